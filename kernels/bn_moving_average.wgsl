// bn_moving_average — both batch-norm running statistics of a layer updated from the packed
// batch statistics of the training forward (Keras):
//   moving' = moving * momentum + batch * (1 - momentum)
// written as tfjs's separate mul/mul/add would round it. One dispatch per layer: a
// multi-output program (src/ops/webgpu_multi_output.ts) writes both fresh statistics.
// Bindings: 0 newMean (C), 1 newVariance (C), 2 movingMean (C), 3 movingVariance (C),
// 4 stats (3, C: rows mean / biased variance / invStd, from bn_stats_finalize.wgsl);
// uniforms: size = C, momentum, oneMinusMomentum.

fn main(c : i32) {
  let m = uniforms.momentum;
  let k = uniforms.oneMinusMomentum;
  newMean[c] = movingMean[c] * m + stats[c] * k;
  newVariance[c] = movingVariance[c] * m + stats[uniforms.size + c] * k;
}
