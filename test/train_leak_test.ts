// 30 training steps of the enhanced model (fused ops, webgpu) keep tensor count and bytes flat.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel } from "../src/model/model.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { augmentBatch } from "../src/train/augment.ts";
import { Rng } from "../src/random.ts";

Deno.test("train: no tensor leaks over 30 enhanced (fused) steps on webgpu", async () => {
  await initTf("webgpu");
  const model = createModel("enhanced", { ops: "fused", seed: 1, l2: 1e-4 });
  const optimizer = tf.train.adam(1e-3);
  const step = makeTrainStep(model, optimizer, { labelSmoothing: 0.1 });
  const x = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
  const y = tf.tidy(() =>
    tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10)
  ) as tf.Tensor2D;
  const rng = new Rng(1);
  const losses: number[] = [];
  let warm = { numTensors: 0, numBytes: 0 };
  for (let i = 0; i < 30; i++) {
    const xa = augmentBatch(x, rng);
    const loss = step(xa, y);
    losses.push((await loss.data())[0]);
    tf.dispose([loss, xa]);
    if (i === 4) warm = { ...tf.memory() }; // Adam's moments exist after the first step
  }
  const now = tf.memory();
  assert.equal(now.numTensors, warm.numTensors);
  assert.equal(now.numBytes, warm.numBytes);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[29] < losses[0], `loss ${losses[0]} -> ${losses[29]} on a fixed batch`);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});
