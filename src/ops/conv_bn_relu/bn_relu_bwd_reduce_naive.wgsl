// bn_relu_bwd_reduce_naive — naive per-channel sums of the batch-norm backward (oracle).
//
// One invocation per element of the (6, Cout) output, the layout of bn_relu_bwd_reduce.wgsl's
// with a single chunk: rows 0-3 copy mean, invStd, gamma, beta; rows 4 and 5 loop over all
// M = N*Ho*Wo rows:
//   row 4: dbeta[c] = sum_M g        row 5: dgamma[c] = sum_M g * xhat
// Oracle/fallback for bn_relu_bwd_reduce.wgsl (FMNIST_NAIVE_KERNELS=1); the dz or sums pass
// after it is the same.
//
// Bindings (in order): 0 result (6, Cout) f32; 1 dy (M*Cout); 2 z (M*Cout); 3 stats (3*Cout);
//   4 gamma (Cout); 5 beta (Cout); then uniforms (geometry, invM). All inputs are bound
//   as flat 1-D views (NHWC order), so shapes reach the shader only as uniforms.
// Grid: flat, one invocation per output element (index = row * Cout + c), workgroup 64.

fn main(index : i32) {
  let outC = uniforms.outC;
  if (index >= 6 * outC) {
    return;
  }
  let row = index / outC;
  let c = index - row * outC;
  if (row < 4) {
    var factors = array<f32, 4>(stats[c], stats[2 * outC + c], gamma[c], beta[c]);
    result[index] = factors[row];
    return;
  }
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  var acc = 0.0;
  for (var r = 0; r < rows; r++) {
    let i = r * outC + c;
    let xhat = (z[i] - stats[c]) * stats[2 * outC + c];
    let g = select(0.0, dy[i], gamma[c] * xhat + beta[c] > 0.0);
    acc += select(g, g * xhat, row == 5);
  }
  result[index] = acc;
}
