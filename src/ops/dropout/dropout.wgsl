// dropout — inverted dropout with a counter-based mask (src/ops/dropout/dropout.ts):
//   y[i] = x[i] * dropoutMultiplier(i)   (dropout_mask.wgsl, prepended: the mask and its why)
// Nothing but the seed is stored: the gradient runs this same kernel on dy.
// Bindings: 0 result (n), 1 x (n), 2 dropoutKey (1); uniforms threshold, scale, n.

fn main(index : i32) {
  if (index >= uniforms.n) {
    return;
  }
  result[index] = x[index] * dropoutMultiplier(index);
}
