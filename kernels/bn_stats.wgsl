// bn_stats — per-chunk partial batch statistics of z for batch norm (training forward, pass 2).
//
// z (rows = N*Ho*Wo, Cout) is cut into chunks of `rowsPerChunk` rows; each invocation owns one
// (chunk p, channel group c) and writes the chunk's count, mean and M2 = sum((z - mean)^2),
// computed two-pass over the chunk (it is small and cache-resident, and two-pass avoids the
// cancellation of sum/sumsq). bn_stats_finalize.wgsl merges the chunks with Chan's formula.
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
  var sum = VT(0.0);
  for (var r = r0; r < r1; r++) {
    sum += z[r * groups + c];
  }
  let count = f32(r1 - r0);
  let mean = sum / count;
  var m2 = VT(0.0);
  for (var r = r0; r < r1; r++) {
    let d = z[r * groups + c] - mean;
    m2 += d * d;
  }
  result[(p * 3) * groups + c] = VT(count);
  result[(p * 3 + 1) * groups + c] = mean;
  result[(p * 3 + 2) * groups + c] = m2;
}
