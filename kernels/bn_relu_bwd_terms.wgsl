// bn_relu_bwd_terms — the 7 per-channel terms of the batch-norm + ReLU backward, packed for the
// bwdFilter kernel that computes dz as it loads it (the generator's bnReluDz prologue):
//   rows mean, invStd, gamma, beta, k = gamma * invStd, a = dbeta / M, b = dgamma / M, so that
//   dz = k * (dy * (gamma * xhat + beta > 0) - a - xhat * b), xhat = (z - mean) * invStd
// (the math of bn_relu_bwd_dz.wgsl). One buffer instead of five keeps that kernel within the
// 8 storage buffers a stage may bind.
//
// Bindings (in order): 0 result terms (7, Cout) f32; 1 stats (3, Cout); 2 gamma; 3 beta;
//   4 dbeta; 5 dgamma (Cout each) f32; then uniforms (geometry, invM). Flat 1-D views.
// Grid: flat, one invocation per channel (the output has 7 * Cout elements), workgroup 64.

fn main(index : i32) {
  let outC = uniforms.outC;
  if (index >= outC) {
    return;
  }
  let invStd = stats[2 * outC + index];
  result[index] = stats[index];
  result[outC + index] = invStd;
  result[2 * outC + index] = gamma[index];
  result[3 * outC + index] = beta[index];
  result[4 * outC + index] = gamma[index] * invStd;
  result[5 * outC + index] = dbeta[index] * uniforms.invM;
  result[6 * outC + index] = dgamma[index] * uniforms.invM;
}
