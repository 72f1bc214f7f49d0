// conv_bn_relu_bwd_bn_fn — shared helpers (not a kernel): the batch-norm + ReLU backward for one
// element of z, prepended to the v1 kernels that compute dz on the fly (data_v1, weight_v1).
//
// Needs inputs named dy, z (N,Ho,Wo,Cout) f32, stats (3,Cout) f32 (mean; var; invStd),
// gamma, beta (Cout) f32 and sums (2, Cout) f32 = (dbeta = sum g; dgamma = sum g*xhat), packed
// in one buffer because a stage may bind at most 8 storage buffers; uniforms outC : i32 and
// invM : f32 (= 1 / (N*Ho*Wo)).
// Math: xhat = (z - mean) * invStd; g = dy * (gamma * xhat + beta > 0);
//       dz = gamma * invStd * (g - (dbeta + xhat * dgamma) / M).

fn bnXhat(i : i32, c : i32) -> f32 {
  return (z[i] - stats[c]) * stats[2 * uniforms.outC + c];
}

/** dy with the ReLU mask of y = relu(gamma * xhat + beta) applied. */
fn bnMaskedDy(i : i32, c : i32, xhat : f32) -> f32 {
  return select(0.0, dy[i], gamma[c] * xhat + beta[c] > 0.0);
}

fn bnDz(i : i32, c : i32) -> f32 {
  let xhat = bnXhat(i, c);
  let g = bnMaskedDy(i, c, xhat);
  let k = gamma[c] * stats[2 * uniforms.outC + c];
  return k * (g - (sums[c] + xhat * sums[uniforms.outC + c]) * uniforms.invM);
}
