// The enhanced model trains the same through our fused conv+BN+ReLU op and the stock
// composite: same init, same batches, losses and weights agree after several Adam steps. The
// fused side also runs the fused optimizer, loss and moving averages (the training default);
// the stock side tf.train.adam and the tfjs composites.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel, type OpsKind } from "../src/model/model.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { createAdam } from "../src/train/optimizer.ts";

async function trainFew(ops: OpsKind, x: tf.Tensor4D, y: tf.Tensor2D) {
  const model = createModel("enhanced", { ops, seed: 3, dropout: 0, l2: 1e-4 });
  const optimizer = createAdam(model, 1e-3, ops === "fused" ? "fused" : "tfjs");
  const step = makeTrainStep(model, optimizer);
  const losses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const loss = step(x, y);
    losses.push((await loss.data())[0]);
    loss.dispose();
  }
  const probs = model.predict(x);
  const result = {
    losses,
    probs: await probs.data(),
    kernel: await model.variables[0].variable.data(),
  };
  probs.dispose();
  optimizer.dispose();
  model.dispose();
  return result;
}

Deno.test("enhanced: fused and stock ops train in lockstep on webgpu", async () => {
  await initTf("webgpu");
  const x = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 5) as tf.Tensor4D;
  const y = tf.tidy(() =>
    tf.oneHot(tf.tensor1d([9, 8, 7, 6, 5, 4, 3, 2], "int32"), 10)
  ) as tf.Tensor2D;
  const fused = await trainFew("fused", x, y);
  const stock = await trainFew("stock", x, y);
  fused.losses.forEach((l, i) =>
    assert.ok(
      Math.abs(l - stock.losses[i]) < 2e-3 * Math.max(1, Math.abs(l)),
      `step ${i}: ${l} vs ${stock.losses[i]}`,
    )
  );
  assert.ok(fused.losses[3] < fused.losses[0], "loss falls on a fixed batch");
  // Inference mode (folded BN with moving statistics) agrees too.
  fused.probs.forEach((p, i) => assert.ok(Math.abs(p - stock.probs[i]) < 2e-3, `prob ${i}`));
  fused.kernel.forEach((w, i) => assert.ok(Math.abs(w - stock.kernel[i]) < 1e-3, `kernel ${i}`));
  tf.dispose([x, y]);
});
