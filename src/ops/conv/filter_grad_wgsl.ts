// WGSL pieces the filter-gradient kernels share (gemm_wgsl.ts's filter rows, gemm_window_wgsl.ts's
// tap windows, winograd_wgsl.ts's GEMM over tiles): the split of the flat id into reduction
// slices and tiles, and the store of a slice's partials.

import { flatId } from "./codegen.ts";

/** Channel groups and rows of a filter-gradient kernel's partials (dW rows = KH KW Cin). */
export const FILTER_GRAD_SIZES = `  let inCG = uniforms.inC / VA;
  let outCG = uniforms.outC / VB_W;
  let numRows = uniforms.kH * uniforms.kW * uniforms.inC;`;

/**
 * A filter-gradient kernel's store of accumulator `acc` (filter row `row`, column group c0 + c)
 * into its slice's partials, where the column exists.
 */
export function partialStore(row: string, c: number, acc: string): string {
  return `if (c0 + ${c} < outCG) { result[(s * numRows + ${row}) * outCG + c0 + ${c}] = ${acc}; }`;
}

/**
 * The filter-gradient kernels' split of the flat id (`wg`-wide groups): slice `s` of the
 * reduction (past numSplits: return), then within it row tile `ut` and first column `c0` of a
 * CG-wide column tile; `perSlice` and `colTiles` name the WGSL values counting the tiles.
 */
export function sliceTileLines(perSlice: string, wg: number, CG: number): string {
  return `  let id = ${flatId(wg)};
  let s = id / ${perSlice};
  if (s >= uniforms.numSplits) {
    return;
  }
  let tile = id - s * ${perSlice};
  let ut = tile / colTiles;
  let c0 = (tile - ut * colTiles) * ${CG};`;
}
