// bn_stats — per-chunk partial batch statistics of z for batch norm (training forward, pass 2).
//
// z (rows = N*Ho*Wo, Cout) is cut into chunks of `rowsPerChunk` rows; each invocation owns one
// (chunk p, channel c) and writes the chunk's count, mean and M2 = sum((z - mean)^2), computed
// two-pass over the chunk (it is small and cache-resident, and two-pass avoids the cancellation
// of sum/sumsq). bn_stats_finalize.wgsl merges the chunks with Chan's parallel formula.
//
// Bindings (in order): 0 result = partials (P, 3, Cout) f32, rows count/mean/M2;
//   1 z (N,Ho,Wo,Cout) f32; uniforms (zShape, outShape, rowsPerChunk : i32).
// Grid: flat, one invocation per (p, c), index = p * Cout + c (adjacent lanes read adjacent
//   channels of the same row), workgroup 64.

fn main(index : i32) {
  let outC = uniforms.zShape[3];
  let numChunks = uniforms.outShape[0];
  if (index >= numChunks * outC) {
    return;
  }
  let rows = uniforms.zShape[0] * uniforms.zShape[1] * uniforms.zShape[2];
  let p = index / outC;
  let c = index - p * outC;
  let r0 = p * uniforms.rowsPerChunk;
  let r1 = min(rows, r0 + uniforms.rowsPerChunk);
  var sum = 0.0;
  for (var r = r0; r < r1; r++) {
    sum += z[r * outC + c];
  }
  let count = f32(r1 - r0);
  let mean = sum / count;
  var m2 = 0.0;
  for (var r = r0; r < r1; r++) {
    let d = z[r * outC + c] - mean;
    m2 += d * d;
  }
  result[(p * 3) * outC + c] = count;
  result[(p * 3 + 1) * outC + c] = mean;
  result[(p * 3 + 2) * outC + c] = m2;
}
