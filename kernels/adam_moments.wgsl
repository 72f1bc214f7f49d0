// adam_moments — pass 1 of the fused Adam step: the moment updates of up to K variables in one
// dispatch, in place in the packed state (binding 0, `result`: m of every variable, then v).
//   g  = grad + l2 * (w * 2)      (variables with decay; others pass g as is)
//   m' = m * beta1 + g * (1 - beta1),   v' = v * beta2 + (g * g) * (1 - beta2)
// The program appends a generated main(): one flat index over the group's elements, a branch
// per variable slot (uniforms endK / offK: where slot K ends in the group, where its block
// starts in the state), reading gK (and wK) at the element's index inside the variable.
// Each product and sum is written as tf.train.adam's separate ops would round it.

fn updateMoments(at : i32, g : f32) {
  let vAt = uniforms.total + at;
  result[at] = result[at] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
  result[vAt] = result[vAt] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
}

fn decayed(g : f32, w : f32) -> f32 {
  return g + uniforms.l2 * (w * 2.0);
}
