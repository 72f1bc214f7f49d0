// softmax_xent_grad — gradient of the mean smoothed cross-entropy w.r.t. the logits, one row
// per invocation (its C classes in a loop):
//   dlogits[r,c] = (softmax(logits[r,:])[c] * T_r - t[r,c]) * dy / N,   T_r = sum_c t[r,c]
// t = labels * (1 - s) + s / C. Replaces tfjs's ~20 dispatches of the composite's backward.
// Bindings: 0 result (N, C); 1 logits (N, C); 2 labels (N, C); 3 dy (scalar); uniforms: s.

fn main(r : i32) {
  let rows = uniforms.logitsShape[0];
  let classes = uniforms.logitsShape[1];
  if (r >= rows) {
    return;
  }
  let base = r * classes;
  var mx = logits[base];
  for (var c = 1; c < classes; c++) {
    mx = max(mx, logits[base + c]);
  }
  var sumExp = 0.0;
  var total = 0.0;
  let off = uniforms.smoothing / f32(classes);
  for (var c = 0; c < classes; c++) {
    sumExp += exp(logits[base + c] - mx);
    total += f32(labels[base + c]) * (1.0 - uniforms.smoothing) + off;
  }
  let scale = dy[0] / f32(rows);
  for (var c = 0; c < classes; c++) {
    let p = exp(logits[base + c] - mx) / sumExp;
    let t = f32(labels[base + c]) * (1.0 - uniforms.smoothing) + off;
    result[base + c] = (p * total - t) * scale;
  }
}
