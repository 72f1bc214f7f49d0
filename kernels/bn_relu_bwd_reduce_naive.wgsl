// bn_relu_bwd_reduce_naive — naive per-channel sums of the batch-norm backward (oracle).
//
// One invocation per (row, channel) of sums (2, Cout) loops over all M = N*Ho*Wo rows:
//   sums[0, c] = dbeta[c] = sum_M g        sums[1, c] = dgamma[c] = sum_M g * xhat
// Oracle/fallback for bn_relu_bwd_reduce.wgsl + sum_partials.wgsl
// (FMNIST_NAIVE_KERNELS=1).
//
// Bindings (in order): 0 result sums (2, Cout) f32; 1 dy (M*Cout); 2 z (M*Cout); 3 stats (3*Cout);
//   4 gamma (Cout); 5 beta (Cout); then uniforms (geometry, invM). All inputs are bound
//   as flat 1-D views (NHWC order), so shapes reach the shader only as uniforms.
// Grid: flat, one invocation per element of sums (index = which * Cout + c), workgroup 64.

fn main(index : i32) {
  let outC = uniforms.outC;
  if (index >= 2 * outC) {
    return;
  }
  let which = index / outC;
  let c = index - which * outC;
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  var acc = 0.0;
  for (var r = 0; r < rows; r++) {
    let i = r * outC + c;
    let xhat = (z[i] - stats[c]) * stats[2 * outC + c];
    let g = select(0.0, dy[i], gamma[c] * xhat + beta[c] > 0.0);
    acc += select(g, g * xhat, which == 1);
  }
  result[index] = acc;
}
