// Tile configurations for our conv kernels inside a browser (the classifier page and the kernel
// test page), where the adapter may be Chromium's SwiftShader.
//
// Measured in Chromium 156 headless, adapter `google | swiftshader` (Dawn + Tint), on this
// 2-core machine under load: first ConvBnReluInfer call at 28x28, 32 -> 32, batch 1, pipeline
// creation included:
//   fwd.r16c16v4 (the llvmpipe default)  the GPU process dies creating the pipeline
//   fwd.r8c8v4                           31.9 s
//   fwd.r4c4v1.wg16x16k16 (staged)       1.2 s
//   fwd.r4c4v4                           0.13 s
// So on a software adapter the browser pins the 4x4 register tiles; on a real GPU the
// discrete defaults (workgroup-memory tiles) apply, as under Deno.

import { adapterKindOf, configById, type ConvView } from "../../ops/conv/tiling.ts";
import { type TilePlan, tilePlan } from "../../ops/conv/tile_plan.ts";

/** Per view, the configuration a software adapter gets in the browser. */
export const BROWSER_SOFTWARE_TILES: Record<ConvView, string> = {
  fwd: "fwd.r4c4v4",
  bwdData: "bwdData.r4c4v4",
  bwdFilter: "bwdFilter.r4c4v4s256",
};

/** The plan for the adapter: its kind's defaults, and on a software adapter the pinned tiles. */
export function browserTilePlan(info: GPUAdapterInfo): TilePlan {
  const kind = adapterKindOf(info);
  if (kind === "discrete") return tilePlan(kind);
  const pinned = Object.values(BROWSER_SOFTWARE_TILES).map((id) => {
    const c = configById(id);
    if (!c) throw new Error(`browser tile config ${id} does not exist`);
    return c;
  });
  return tilePlan(kind, { pinned });
}
