// The step's small kernels against their CPU references and the tfjs composites they replace:
//   1. SoftmaxXent (loss + correct count) and its gradient on random batches (fast-check,
//      seeded; outputs NaN-poisoned), webgpu vs the float64 CPU reference and vs tfjs's
//      crossEntropy / countCorrect / tf.grad of crossEntropy.
// (The batch-norm running statistics, written by the conv block's statistics pass, are checked
// in conv_bn_relu_fwd_test.ts.)

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { softmaxCrossEntropyWithCount } from "../src/ops/softmax_xent/softmax_xent.ts";
import { softmaxXentGradRef, softmaxXentRef } from "../src/ops/softmax_xent/softmax_xent_ref.ts";
import { countCorrect, crossEntropy } from "../src/train/step.ts";
import { assertClose } from "./helpers/compare.ts";
import { GPU_TEST, withGpu as onGpu } from "./helpers/op_check.ts";
import { Rng } from "../src/random.ts";

interface XentCase {
  rows: number;
  classes: number;
  smoothing: number;
  scale: number;
  seed: number;
}

const xentArb: fc.Arbitrary<XentCase> = fc.record({
  rows: fc.integer({ min: 1, max: 300 }),
  classes: fc.integer({ min: 2, max: 12 }),
  smoothing: fc.constantFrom(0, 0.1, 0.3),
  scale: fc.constantFrom(0.1, 3, 30), // logit spread: up to saturated softmax rows
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

function xentData(c: XentCase) {
  const rng = new Rng(c.seed);
  const logits = Float32Array.from(
    { length: c.rows * c.classes },
    () => (rng.next() - 0.5) * c.scale,
  );
  const labels = new Float32Array(c.rows * c.classes);
  for (let r = 0; r < c.rows; r++) labels[r * c.classes + rng.int(0, c.classes - 1)] = 1;
  return { logits, labels };
}

/**
 * Loss: float32 sums over <= 300 rows x 12 classes, log/exp within a few ulps: rtol 2e-5 on
 * values ~0.1..30. Correct count: exact (ties do not occur with random float logits). Gradient:
 * (p * T - t) / N cancels when a row saturates (p -> 1): its absolute error is a few ulps of
 * 1 (exp, division) over N: atol 5e-7 / N, rtol 1e-5.
 */
async function checkXent(c: XentCase) {
  const d = xentData(c);
  const logits = tf.tensor2d(d.logits, [c.rows, c.classes]);
  // Odd seeds: int32 one-hot labels, as tf.oneHot makes them (the kernels convert on read).
  // Seeds 2 mod 4: tf.cast of int32 labels to float32, which on webgpu keeps the int32 buffer
  // under a float32 label (the loss read it as floats until the kernel asked the backend).
  const kind = c.seed % 2 ? "int32" : c.seed % 4 === 2 ? "cast" : "float32";
  const labels = kind === "cast"
    ? tf.tidy(() => tf.cast(tf.tensor2d(d.labels, [c.rows, c.classes], "int32"), "float32"))
    : tf.tensor2d(d.labels, [c.rows, c.classes], kind);
  const label = JSON.stringify(c);
  try {
    const { loss, correct } = softmaxCrossEntropyWithCount(labels, logits, c.smoothing);
    const ref = softmaxXentRef(d.logits, d.labels, c.rows, c.classes, c.smoothing);
    assertClose(await loss.data(), [ref.loss], { atol: 1e-6, rtol: 2e-5 }, `${label}: loss`);
    assert.equal((await correct.data())[0], ref.correct, `${label}: correct`);
    // The tfjs composite the kernel replaces, on the same backend.
    const stock = crossEntropy(labels, logits, c.smoothing);
    const stockCorrect = countCorrect(logits, labels);
    assertClose(await loss.data(), await stock.data(), { atol: 1e-6, rtol: 2e-5 }, label);
    assert.equal((await correct.data())[0], (await stockCorrect.data())[0]);
    const dy = 1.7; // a non-unit upstream gradient
    const grad = tf.grad((l: tf.Tensor) =>
      tf.mul(softmaxCrossEntropyWithCount(labels, l as tf.Tensor2D, c.smoothing).loss, dy)
    )(logits);
    const gradRef = softmaxXentGradRef(d.logits, d.labels, c.rows, c.classes, c.smoothing, dy);
    const tol = { atol: 5e-7 / c.rows, rtol: 1e-5 };
    assertClose(await grad.data(), gradRef, tol, `${label}: dlogits`);
    const stockGrad = tf.grad((l: tf.Tensor) =>
      tf.mul(crossEntropy(labels, l as tf.Tensor2D, c.smoothing), dy)
    )(logits);
    assertClose(await grad.data(), await stockGrad.data(), tol, label);
    tf.dispose([loss, correct, stock, stockCorrect, grad, stockGrad]);
  } finally {
    tf.dispose([logits, labels]);
  }
}

Deno.test({
  name: "SoftmaxXent: webgpu loss, count and gradient match the references on random batches",
  ...GPU_TEST,
  fn: () =>
    onGpu(() => fc.assert(fc.asyncProperty(xentArb, checkXent), { seed: 20261201, numRuns: 30 })),
});

Deno.test({
  name: "SoftmaxXent: cpu kernels match tfjs's crossEntropy and countCorrect",
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    await fc.assert(fc.asyncProperty(xentArb, checkXent), { seed: 5, numRuns: 10 });
  },
});

Deno.test({
  name: "SoftmaxXent: a hand-checkable batch",
  ...GPU_TEST,
  fn: () =>
    onGpu(async () => {
      // Row 0: logits (0, ln 3): p = (1/4, 3/4), label 1 -> -ln(3/4); argmax right.
      // Row 1: logits (0, 0): p = (1/2, 1/2), label 0 -> ln 2; argmax 0 (first max) right.
      const logits = tf.tensor2d([0, Math.log(3), 0, 0], [2, 2]);
      const labels = tf.tensor2d([0, 1, 1, 0], [2, 2]);
      const { loss, correct } = softmaxCrossEntropyWithCount(labels, logits);
      const want = (-Math.log(0.75) + Math.log(2)) / 2;
      assertClose(await loss.data(), [want], { atol: 1e-7, rtol: 1e-6 }, "loss");
      assert.equal((await correct.data())[0], 2);
      const g = tf.grad((l: tf.Tensor) =>
        softmaxCrossEntropyWithCount(labels, l as tf.Tensor2D).loss
      )(logits);
      // (p - t) / N
      assertClose(await g.data(), [0.125, -0.125, -0.25, 0.25], { atol: 1e-7, rtol: 1e-6 }, "g");
      tf.dispose([logits, labels, loss, correct, g]);
    }),
});
