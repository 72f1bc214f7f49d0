// bn_moving_average — one batch-norm running statistic updated from the batch's (Keras):
//   moving' = moving * momentum + batch * (1 - momentum)
// written as tfjs's separate mul/mul/add would round it. One dispatch per statistic (a tfjs
// program writes one buffer; mean and variance are separate checkpointed variables): 2 per BN
// layer instead of 6 elementwise ops. Bindings: 0 result = moving' (C); 1 moving (C);
// 2 batch (C); uniforms: momentum, oneMinusMomentum.

fn main(index : i32) {
  if (index < uniforms.size) {
    result[index] = moving[index] * uniforms.momentum + batch[index] * uniforms.oneMinusMomentum;
  }
}
