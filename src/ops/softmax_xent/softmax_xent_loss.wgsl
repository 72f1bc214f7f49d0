// softmax_xent_loss — training loss and accuracy counter of a batch, in one workgroup:
//   loss[0]    = -mean_r sum_c t[r,c] * (logits[r,c] - logSumExp(logits[r,:]))
//   correct[0] = #rows with argmax(logits[r,:]) == argmax(labels[r,:]) (first max wins, as
//                tf.argMax)
// with t = labels * (1 - s) + s / C (label smoothing s). 64 invocations stride over the rows
// (a row's classes in a loop: <= 8192 / 64 * 5 * C iterations, far under llvmpipe's 65,535
// loop cap for C = 10), then one tree reduction of both sums in workgroup memory. A
// multi-output program (src/ops/backend/webgpu_multi_output.ts, everyInvocation: the barriers need
// all 64 invocations; size = 64): both outputs in one dispatch (two dispatches until then, one
// per output; the loss's additions, lane sums then the tree, are in the same order as then).
// Bindings: 0 loss (1), 1 correct (1); 2 logits (N, C); 3 labels (N, C), f32 or i32
// (tf.oneHot; read through f32()); uniforms: size, smoothing.

var<workgroup> partial : array<vec2<f32>, 64>;

fn rowLoss(r : i32, classes : i32) -> f32 {
  let base = r * classes;
  var mx = logits[base];
  for (var c = 1; c < classes; c++) {
    mx = max(mx, logits[base + c]);
  }
  var sumExp = 0.0;
  for (var c = 0; c < classes; c++) {
    sumExp += exp(logits[base + c] - mx);
  }
  let lse = mx + log(sumExp);
  var acc = 0.0;
  let off = uniforms.smoothing / f32(classes);
  for (var c = 0; c < classes; c++) {
    let t = f32(labels[base + c]) * (1.0 - uniforms.smoothing) + off;
    acc += t * (logits[base + c] - lse);
  }
  return acc;
}

fn argMaxOf(r : i32, classes : i32, ofLabels : bool) -> i32 {
  let base = r * classes;
  var best = 0;
  var bestValue = select(logits[base], f32(labels[base]), ofLabels);
  for (var c = 1; c < classes; c++) {
    let v = select(logits[base + c], f32(labels[base + c]), ofLabels);
    if (v > bestValue) {
      best = c;
      bestValue = v;
    }
  }
  return best;
}

fn main(lid : i32) {
  let rows = uniforms.logitsShape[0];
  let classes = uniforms.logitsShape[1];
  var lossSum = 0.0;
  var hits = 0.0;
  for (var r = lid; r < rows; r += 64) {
    lossSum += rowLoss(r, classes);
    if (argMaxOf(r, classes, false) == argMaxOf(r, classes, true)) {
      hits += 1.0;
    }
  }
  partial[lid] = vec2<f32>(lossSum, hits);
  workgroupBarrier();
  for (var stride = 32; stride > 0; stride = stride / 2) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0) {
    loss[0] = -partial[0].x / f32(rows);
    correct[0] = partial[0].y;
  }
}
