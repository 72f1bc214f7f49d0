// bn_relu_bwd_terms — the 7 per-channel terms of the batch-norm + ReLU backward, packed for the
// bwdFilter kernel that computes dz as it loads it (the generator's bnReluDz prologue):
//   rows mean, invStd, gamma, beta, k = gamma * invStd, a = dbeta / M, b = dgamma / M, so that
//   dz = k * (dy * (gamma * xhat + beta > 0) - a - xhat * b), xhat = (z - mean) * invStd
// (the math of bn_relu_bwd_dz.wgsl). One buffer instead of five keeps that kernel within the
// 8 storage buffers a stage may bind.
// Written by the dbeta/dgamma pass (bn_relu_bwd_sums.wgsl, included after it) as soon as a
// channel's sums exist: a separate pass until then (1 dispatch per step for enhanced's
// model-input layer).
// Bindings read: partials (rows 0-3 mean, invStd, gamma, beta, copied there by
// bn_relu_bwd_reduce.wgsl); written: terms (7, Cout); uniforms: size = Cout, invM.

fn writeTerms(c : i32, sums : vec2<f32>) {
  let outC = uniforms.size;
  let invStd = partials[outC + c];
  let gam = partials[2 * outC + c];
  terms[c] = partials[c];
  terms[outC + c] = invStd;
  terms[2 * outC + c] = gam;
  terms[3 * outC + c] = partials[3 * outC + c];
  terms[4 * outC + c] = gam * invStd;
  terms[5 * outC + c] = sums.x * uniforms.invM;
  terms[6 * outC + c] = sums.y * uniforms.invM;
}
