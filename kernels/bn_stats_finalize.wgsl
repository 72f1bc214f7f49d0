// bn_stats_finalize — merges the per-chunk partials of bn_stats.wgsl into the batch statistics
// (training forward, pass 3). Chan et al.'s pairwise update, chunk by chunk:
//   n = na + nb; d = mb - ma; mean = ma + d * nb / n; M2 = M2a + M2b + d^2 * na * nb / n
// which, unlike sum/sumsq, does not lose the variance when |mean| >> std.
//
// Bindings (in order): 0 result = stats (3, Cout) f32, rows mean / biased variance /
//   invStd = 1/sqrt(var + eps); 1 partials (P, 3, Cout) f32; uniforms (partialsShape, outShape,
//   eps : f32).
// Grid: flat, one invocation per channel (tiny: Cout invocations, P iterations each).

fn main(index : i32) {
  let outC = uniforms.outShape[1];
  if (index >= outC) {
    return;
  }
  let numChunks = uniforms.partialsShape[0];
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0; p < numChunks; p++) {
    let nb = partials[(p * 3) * outC + index];
    let mb = partials[(p * 3 + 1) * outC + index];
    let m2b = partials[(p * 3 + 2) * outC + index];
    let nab = n + nb;
    let d = mb - mean;
    mean = mean + d * (nb / nab);
    m2 = m2 + m2b + d * d * (n * nb / nab);
    n = nab;
  }
  let variance = m2 / n;
  result[index] = mean;
  result[outC + index] = variance;
  result[2 * outC + index] = 1.0 / sqrt(variance + uniforms.eps);
}
