// bn_stats_finalize — merges the per-chunk partials of bn_stats.wgsl into the batch statistics
// (training forward, pass 3), and, in a training step, folds them into the layer's running
// statistics in the same dispatch. Chan et al.'s pairwise update, chunk by chunk:
//   n = na + nb; d = mb - ma; mean = ma + d * nb / n; M2 = M2a + M2b + d^2 * na * nb / n
// which, unlike sum/sumsq, does not lose the variance when |mean| >> std.
// Moving statistics (Keras): moving' = moving * momentum + batch * (1 - momentum), written as
// tfjs's separate mul/mul/add would round it (see src/ops/conv_bn_relu_fwd.ts).
//
// A multi-output program (src/ops/webgpu_multi_output.ts); the program generates main(), which
// calls batchStats and writes
//   stats (3, Cout): rows mean / biased variance / invStd = 1/sqrt(var + eps), and with the
//   moving statistics newMean (Cout), newVariance (Cout) from movingMean, movingVariance (Cout).
// Inputs: partials (P, 3, Cout) rows count / mean / M2; uniforms: size = Cout, eps (and momentum,
// oneMinusMomentum). Grid: one invocation per channel (tiny: Cout invocations, P iterations each).

/** (mean, biased variance) of channel c over all chunks. */
fn batchStats(c : i32) -> vec2<f32> {
  let outC = uniforms.size;
  let numChunks = uniforms.partialsShape[0];
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0; p < numChunks; p++) {
    let nb = partials[(p * 3) * outC + c];
    let mb = partials[(p * 3 + 1) * outC + c];
    let m2b = partials[(p * 3 + 2) * outC + c];
    let nab = n + nb;
    let d = mb - mean;
    mean = mean + d * (nb / nab);
    m2 = m2 + m2b + d * d * (n * nb / nab);
    n = nab;
  }
  return vec2<f32>(mean, m2 / n);
}

fn writeStats(c : i32, s : vec2<f32>) {
  let outC = uniforms.size;
  stats[c] = s.x;
  stats[outC + c] = s.y;
  stats[2 * outC + c] = 1.0 / sqrt(s.y + uniforms.eps);
}
