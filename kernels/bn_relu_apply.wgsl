// bn_relu_apply — normalise + scale/shift + ReLU, elementwise (training forward, pass 4):
//   y = relu(gamma[c] * (z - mean[c]) * invStd[c] + beta[c])
//
// VT is f32, or vec4<f32> when Cout % 4 == 0 (every binding read as vec4, c indexes groups of 4
// channels); the program prepends `alias VT = ...; const VW = 1|4; const ROWS = 16;`. Each
// invocation handles ROWS rows of one channel group, so the 4 per-channel loads (mean, invStd,
// gamma, beta) are shared by ROWS elements (llvmpipe: loads, not arithmetic, set the cost).
// ROWS = 16 (was 4): llvmpipe, batch 128, median of 15 dispatch timings in one run, 28x28x32:
// ROWS 4 / 8 / 16 = 17.4 / 15.6 / 12.7 ms; 14x14x64: 10.5 / 10.5 / 10.6 ms.
// Bindings (in order): 0 result = y (N,Ho,Wo,Cout); 1 z (N,Ho,Wo,Cout); 2 stats (3, Cout) rows
//   mean / variance / invStd; 3 gamma (Cout); 4 beta (Cout); uniforms (zShape, ... outShape).
// Grid: flat, index = rowBlock * (Cout / VW) + c, workgroup 64.

fn main(index : i32) {
  let groups = uniforms.zShape[3] / VW;
  let rows = uniforms.zShape[0] * uniforms.zShape[1] * uniforms.zShape[2];
  let rb = index / groups;
  let c = index - rb * groups;
  let r0 = rb * ROWS;
  if (r0 >= rows) {
    return;
  }
  let mean = stats[c];
  let scale = gamma[c] * stats[2 * groups + c]; // gamma * invStd
  let b = beta[c];
  // (z - mean) * scale, not z * scale + (beta - mean * scale): no cancellation when |mean| >> std.
  for (var r = r0; r < min(rows, r0 + ROWS); r++) {
    let i = r * groups + c;
    result[i] = max((z[i] - mean) * scale + b, VT(0.0));
  }
}
