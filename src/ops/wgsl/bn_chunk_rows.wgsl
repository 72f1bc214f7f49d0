// bn_chunk_rows — the rows a row lane takes on the chunked grid of the batch-norm passes
// (src/ops/conv_bn_relu/bn_chunk_grid.ts): lane `lane` (of 8) of chunk `p` takes one contiguous eighth of
// the chunk, [r0, r1) (empty past the last row). Contiguous, not every 8th row: llvmpipe runs
// a workgroup's SIMD rows (8 lanes along x, one row lane each) one after another between
// barriers, so with every 8th row each of them streams through the whole chunk touching an
// eighth of each cache line; measured on the apply pass (llvmpipe, batch 128, 28x28x32, with no
// merge): 4.6 ms strided vs 3.4 ms for the earlier flat pass; contiguous: on par.

/** [r0, r1) of row lane `lane` in chunk `p`; rowsPerChunk is a multiple of 8. */
fn laneRowRange(p : i32, lane : i32, rowsPerChunk : i32, rows : i32) -> vec2<i32> {
  let q = rowsPerChunk / 8;
  let end = min(rows, (p + 1) * rowsPerChunk);
  let r0 = min(p * rowsPerChunk + lane * q, end);
  return vec2<i32>(r0, min(end, r0 + q));
}
