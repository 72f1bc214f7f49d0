// adam_update — the fused Adam step of up to K variables in one dispatch: moments updated in
// place in the packed state (binding 0, `state`: m of every variable, then v), each variable's
// new weights into a fresh buffer (`wNewK`) that the optimizer assigns to the variable.
//   g  = grad + l2 * (w * 2)      (variables with decay; others pass g as is)
//   m' = m * beta1 + g * (1 - beta1),   v' = v * beta2 + (g * g) * (1 - beta2)
//   w' = ((m' / (1 - beta1^t)) / (sqrt(v' / (1 - beta2^t)) + epsilon)) * -lr + w
// epsilon after the square root (tf.train.adam, Keras); each product and sum written as
// tf.train.adam's separate ops would round it. The program (src/ops/adam_step/adam_step_webgpu.ts)
// appends a generated main(): one flat index over the group's elements, a branch per variable
// slot (uniforms endK / offK: where slot K ends in the group, where its block starts in the
// state), reading gK and wK at the element's index inside the variable.
// The values that change every step (1 - beta1^t, 1 - beta2^t, -lr) come from the storage input
// `stepScalars` instead of the uniform block, so that every step's uniforms are the same bytes
// (src/tf/step_capture.ts replays a recorded step and writes only these three floats).

fn decayed(g : f32, w : f32) -> f32 {
  return g + uniforms.l2 * (w * 2.0);
}

/** Updates the moments at `at` (in place) and returns the new weight. */
fn adamUpdate(at : i32, g : f32, w : f32) -> f32 {
  let vAt = uniforms.total + at;
  let m = state[at] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
  let v = state[vAt] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
  state[at] = m;
  state[vAt] = v;
  let mHat = m / stepScalars[0];
  let vHat = v / stepScalars[1];
  return (mHat / (sqrt(vHat) + uniforms.epsilon)) * stepScalars[2] + w;
}
