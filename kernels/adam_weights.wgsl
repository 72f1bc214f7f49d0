// adam_weights — pass 2 of the fused Adam step: one variable's new weights (a fresh buffer that
// the optimizer assigns to the variable), from its freshly updated moments in the packed state.
//   w' = ((m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)) * -lr + w
// epsilon is added after the square root (tf.train.adam, Keras). Bindings: 0 result = w' (n);
// 1 w (n); 2 state (2 * total); uniforms: offset (this variable's block), total, n, scalars.

fn main(index : i32) {
  if (index >= uniforms.n) {
    return;
  }
  let at = uniforms.offset + index;
  let mHat = state[at] / uniforms.oneMinusAccBeta1;
  let vHat = state[uniforms.total + at] / uniforms.oneMinusAccBeta2;
  result[index] = (mHat / (sqrt(vHat) + uniforms.epsilon)) * uniforms.negLr + w[index];
}
