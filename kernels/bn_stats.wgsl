// bn_stats — per-chunk partial batch statistics of z for batch norm (training forward, pass 2).
//
// z (rows = N*Ho*Wo, Cout) is cut into chunks of `rowsPerChunk` rows; each invocation owns one
// (chunk p, channel group c) and writes the chunk's count, mean and M2 = sum((z - mean)^2) from
// ONE pass of sums shifted by the chunk's first row (see main); bn_stats_finalize.wgsl merges the
// chunks with Chan's formula. The earlier two-pass version (mean, then sum of squared deviations)
// read z twice; llvmpipe, batch 128, median of 15 dispatch timings in one run: 28x28x32 13.0 ->
// 8.9 ms, 14x14x64 7.0 -> 7.0 ms (best 7.5 -> 6.0, 6.0 -> 4.8).
// VT is f32, or vec4<f32> when Cout % 4 == 0 (4 channels per invocation: on llvmpipe a vec4 load
// costs about what a scalar load does, so this pass got ~4x fewer load instructions); the program
// prepends `alias VT = ...; const VW = 1|4;`.
//
// Bindings (in order): 0 result = partials (P, 3, Cout) as VT, rows count/mean/M2;
//   1 z (N,Ho,Wo,Cout) as VT; uniforms (zShape, outShape (element shapes), rowsPerChunk : i32).
// Grid: flat, one invocation per (p, c), index = p * (Cout / VW) + c, workgroup 64.

fn main(index : i32) {
  let groups = uniforms.zShape[3] / VW;
  let numChunks = uniforms.outShape[0];
  if (index >= numChunks * groups) {
    return;
  }
  let rows = uniforms.zShape[0] * uniforms.zShape[1] * uniforms.zShape[2];
  let p = index / groups;
  let c = index - p * groups;
  let r0 = p * uniforms.rowsPerChunk;
  let r1 = min(rows, r0 + uniforms.rowsPerChunk);
  // One pass over the chunk with sums shifted by the chunk's first row k: d = z - k is of the
  // order of the spread inside the chunk, so S2 - S1^2/n does not cancel the way raw sum/sumsq
  // would when |mean| >> std, and z is read once instead of twice.
  let k = z[r0 * groups + c];
  var s1 = VT(0.0);
  var s2 = VT(0.0);
  for (var r = r0 + 1; r < r1; r++) {
    let d = z[r * groups + c] - k;
    s1 += d;
    s2 += d * d;
  }
  let count = f32(r1 - r0);
  let shift = s1 / count;
  result[(p * 3) * groups + c] = VT(count);
  result[(p * 3 + 1) * groups + c] = k + shift;
  result[(p * 3 + 2) * groups + c] = max(s2 - s1 * shift, VT(0.0));
}
