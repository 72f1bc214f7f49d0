// Helpers the WGSL generators share (gemm_wgsl.ts, gemm_window_wgsl.ts, winograd_wgsl.ts): line
// lists, indentation, the flat invocation id of a 2-D grid, column groups and the image-size
// uniform fields (filter_grad_wgsl.ts has the filter-gradient kernels' pieces).

import type { TileConfig } from "./tiling.ts";
import type { GemmWidths } from "./gemm_wgsl.ts";
import { texelLoad } from "../../tf/uniform_inputs.ts";

export const range = (n: number) => [...Array(n).keys()];
export const indent = (pad: string, lines: string[]) => lines.map((l) => pad + l).join("\n");
export const COMPONENTS = ["x", "y", "z", "w"];

/** Flat invocation id over a 2-D grid of `wg`-wide workgroups (x capped at 65535 groups). */
export function flatId(wg: number): string {
  return `i32(globalId.x) + i32(globalId.y) * i32(numWorkgroups.x) * ${wg}`;
}

/**
 * `let cb{c} = min(c0 + c, count - 1);` for the CG column groups of a register tile from c0: a
 * group past the last reads the last one (and stores nothing).
 */
export function clampedColumns(CG: number, count: string): string {
  return indent("  ", range(CG).map((c) => `let cb${c} = min(c0 + ${c}, ${count} - 1);`));
}

/**
 * Column groups (accumulators per row) of a register config at the widths a shape allows. When a
 * vec4 config falls back to scalar columns (a channel count not a multiple of 4) it keeps the
 * same number of accumulators (cols / 4 scalars), not 4x as many: code size and compile time stay
 * bounded, and such layers are rare (odd channel counts).
 */
export function columnGroups(cfg: TileConfig, w: GemmWidths): number {
  const cols = cfg.vecWidth === 4 && w.vb === 1
    ? cfg.colsPerInvocation / 4
    : cfg.colsPerInvocation / w.vb;
  return Math.max(1, Math.floor(cols));
}

/** Uniform fields of the image sizes, first in every conv kernel's uniforms (x: N, H, W, Cin). */
export const SIZE_FIELDS = ["batch", "inH", "inW", "inC", "outH", "outW", "outC"] as const;

/**
 * WGSL for element `index` (an i32 expression) of input `name`: from its storage binding, or
 * where `w.textureInputs` names it (inputs read as vec4 only), texel `index` of `name`_tex
 * (src/tf/uniform_inputs.ts's texelLoad; it binds the copy).
 */
export function vec4Load(w: GemmWidths, name: string, index: string): string {
  return w.textureInputs?.includes(name) ? texelLoad(name, index) : `${name}[${index}]`;
}
