// Both models train the same through our ops (enhanced: fused conv+BN+ReLU; baseline: conv +
// bias + ReLU) and the stock tfjs ops: same init, same batches, losses and weights agree after
// several Adam steps (the fused side also runs the fused optimizer, loss and moving averages, the
// training default; the stock side tf.train.adam and the tfjs composites), and the gradient of
// every variable agrees at batch 128 for enhanced. baseline with stock ops on webgpu gives the CPU
// backend's gradients at batch 128.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel, type OpsKind } from "../src/model/model.ts";
import { createAdam } from "../src/train/optimizer.ts";
import { crossEntropy, makeTrainStep } from "../src/train/step.ts";
import { assertClose, compareArrays } from "./helpers/compare.ts";
import { GPU_TEST, withGpu } from "./helpers/op_check.ts";
import { convBnReluTrain } from "../src/ops/conv_bn_relu/conv_bn_relu.ts";
import { bnMovingAverageRef } from "../src/ops/conv_bn_relu/conv_bn_relu_ref.ts";

async function trainFew(
  name: "baseline" | "enhanced",
  ops: OpsKind,
  x: tf.Tensor4D,
  y: tf.Tensor2D,
) {
  // Dropout 0 here and below: the fused path's SeededDropout and the stock path's tf.dropout
  // draw different masks from the same seed (src/ops/dropout/dropout_test.ts checks ours).
  const model = createModel(name, { ops, seed: 3, dropout: 0, l2: 1e-4 });
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

for (const name of ["enhanced", "baseline"] as const) {
  Deno.test(`${name}: fused and stock ops train in lockstep on webgpu`, async () => {
    await initTf("webgpu");
    const x = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 5) as tf.Tensor4D;
    const y = tf.tidy(() =>
      tf.oneHot(tf.tensor1d([9, 8, 7, 6, 5, 4, 3, 2], "int32"), 10)
    ) as tf.Tensor2D;
    const fused = await trainFew(name, "fused", x, y);
    const stock = await trainFew(name, "stock", x, y);
    fused.losses.forEach((l, i) =>
      assert.ok(
        Math.abs(l - stock.losses[i]) < 2e-3 * Math.max(1, Math.abs(l)),
        `step ${i}: ${l} vs ${stock.losses[i]}`,
      )
    );
    assert.ok(fused.losses[3] < fused.losses[0], "loss falls on a fixed batch");
    // Inference mode (folded BN with moving statistics for enhanced) agrees too.
    fused.probs.forEach((p, i) => assert.ok(Math.abs(p - stock.probs[i]) < 2e-3, `prob ${i}`));
    fused.kernel.forEach((w, i) => assert.ok(Math.abs(w - stock.kernel[i]) < 1e-3, `kernel ${i}`));
    tf.dispose([x, y]);
  });
}

// ---- Gradients of every variable at the default batch (128), compared directly: after Adam
// steps a uniformly scaled gradient would barely move the weights, so weights alone do not show it.

/** Seeded batch of 128 real-looking inputs (uniform pixels) and one-hot labels. */
function batch128(): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = tf.randomUniform([128, 28, 28, 1], 0, 1, "float32", 17) as tf.Tensor4D;
  const labels = Int32Array.from({ length: 128 }, (_, i) => (i * 7) % 10);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, "int32"), 10)) as tf.Tensor2D;
  return { x, y };
}

/** Loss (cross-entropy + L2) and its gradient for every trainable variable, by stable name. */
async function modelGrads(
  name: "baseline" | "enhanced",
  ops: OpsKind,
  x: tf.Tensor4D,
  y: tf.Tensor2D,
) {
  const model = createModel(name, { ops, seed: 3, dropout: 0, l2: 1e-4 });
  const { value, grads } = tf.variableGrads(() => {
    const ce = crossEntropy(y, model.apply(x, true));
    const penalty = model.regularizationLoss();
    return penalty ? tf.add(ce, penalty) : ce;
  }, model.trainableVariables);
  const byName = new Map<string, Float32Array>();
  for (const v of model.variables) {
    if (!v.trainable) continue;
    byName.set(v.name, (await grads[v.variable.name].data()) as Float32Array);
  }
  const loss = (await value.data())[0];
  tf.dispose([value, ...Object.values(grads)]);
  model.dispose();
  return { loss, grads: byName };
}

/**
 * The loss within 1e-4 relative, and every variable's gradient within `tol` (atol scaled by the
 * variable's max |gradient|).
 */
function assertSameLossAndGrads(
  got: { loss: number; grads: Map<string, Float32Array> },
  want: { loss: number; grads: Map<string, Float32Array> },
  tol: { atol: number; rtol: number; relL2: number },
  label: string,
) {
  assert.ok(
    Math.abs(got.loss - want.loss) < 1e-4 * Math.abs(want.loss),
    `${label}: loss ${got.loss} vs ${want.loss}`,
  );
  assert.deepEqual([...got.grads.keys()], [...want.grads.keys()]);
  const errors: string[] = [];
  const failures: string[] = [];
  for (const [name, e] of want.grads) {
    let m = 0;
    for (const v of e) m = Math.max(m, Math.abs(v));
    const r = compareArrays(got.grads.get(name)!, e, { ...tol, atol: tol.atol * m }, name);
    errors.push(`${name} ${r.relL2.toExponential(1)}`);
    if (!r.ok) failures.push(r.message);
  }
  console.log(`  ${label} rel L2: ${errors.join(", ")}`);
  assert.deepEqual(failures, [], label);
}

Deno.test("baseline: every variable's gradient at batch 128 on webgpu matches the CPU backend", async () => {
  // baseline is built from stock ops only (fused.conv2d + bias + ReLU): its first conv has 86,528
  // output rows at batch 128, past the stock filter gradient's loop limit on llvmpipe.
  const { x, y } = batch128();
  const xs = await x.data(), ys = await y.data();
  tf.dispose([x, y]);
  const run = async (backend: "webgpu" | "cpu") => {
    await initTf(backend);
    const bx = tf.tensor4d(xs, [128, 28, 28, 1]), by = tf.tensor2d(ys, [128, 10]);
    const r = await modelGrads("baseline", "stock", bx, by);
    tf.dispose([bx, by]);
    return r;
  };
  const gpu = await run("webgpu");
  const cpu = await run("cpu");
  await initTf("webgpu");
  assertSameLossAndGrads(
    gpu,
    cpu,
    { atol: 1e-3, rtol: 1e-2, relL2: 1e-4 },
    "baseline webgpu vs cpu",
  );
});

Deno.test("enhanced: fused and stock ops give the same gradient for every variable at batch 128", async () => {
  await initTf("webgpu");
  const { x, y } = batch128();
  const fused = await modelGrads("enhanced", "fused", x, y);
  const stock = await modelGrads("enhanced", "stock", x, y);
  tf.dispose([x, y]);
  // Two float32 paths through 4 batch-norm layers, 2 max-pools and ReLUs: a near-tie in a ReLU
  // or a pooling window can resolve differently in the two paths and move single elements, so
  // the bound is on each variable's relative L2 error, not per element. Measured (llvmpipe): at
  // most 3.6e-3 (block 1, whose filter gradients are cancelling sums: positive inputs, and batch
  // norm makes sum(dz) = 0 per channel), ~1e-6 in block 2's second conv and the dense layers.
  // A wrong slice or a scaled gradient gives relL2 >= 0.1.
  assertSameLossAndGrads(
    fused,
    stock,
    { atol: Infinity, rtol: 0, relL2: 2e-2 },
    "enhanced fused vs stock",
  );
});

// ---- The fused layer's moving-average update, written by the statistics pass of its conv block,
// must give what convBnReluTrain's mean/variance and the float32
// reference (tfjs's mul/mul/add rounding) give: exact on cpu, 1 ulp on webgpu (FMA contraction).

async function checkMovingStats(backend: "webgpu" | "cpu") {
  await initTf(backend);
  const model = createModel("enhanced", { ops: "fused", seed: 3, dropout: 0 });
  const v = (name: string) => model.variables.find((e) => e.name === `block1/conv1/${name}`)!;
  // Off the 0 / 1 init, so that the moving * momentum term is checked too.
  v("moving_mean").variable.assign(tf.randomUniform([32], -0.5, 0.5, "float32", 8));
  v("moving_variance").variable.assign(tf.randomUniform([32], 0.5, 2, "float32", 9));
  const before = {
    mean: await v("moving_mean").variable.data() as Float32Array,
    variance: await v("moving_variance").variable.data() as Float32Array,
  };
  const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 5) as tf.Tensor4D;
  const batch = convBnReluTrain(
    x,
    v("kernel").variable as tf.Tensor4D,
    v("gamma").variable as tf.Tensor1D,
    v("beta").variable as tf.Tensor1D,
    { strides: 1, pad: "same" },
  );
  tf.dispose(model.apply(x, true));
  const tol = backend === "cpu" ? { atol: 0, rtol: 0 } : { atol: 1e-7, rtol: 1.2e-7 };
  for (const stat of ["mean", "variance"] as const) {
    const want = bnMovingAverageRef(before[stat], await batch[stat].data() as Float32Array, 0.99);
    const got = await v(`moving_${stat}`).variable.data();
    assertClose(got, want, tol, `${backend} moving_${stat}`);
  }
  for (const e of model.variables.filter((e) => e.name.includes("moving_"))) {
    const init = e.name.endsWith("moving_mean") ? 0 : 1;
    const values = await e.variable.data();
    if (!e.name.startsWith("block1/conv1/")) {
      assert.ok(values.some((x) => x !== init), `${e.name} updated`);
    }
  }
  tf.dispose([x, batch.y, batch.mean, batch.variance]);
  model.dispose();
}

Deno.test({
  name: "enhanced (fused): a training forward folds the batch statistics into the moving ones",
  ...GPU_TEST,
  fn: async () => {
    await withGpu(() => checkMovingStats("webgpu"));
    await checkMovingStats("cpu");
    await initTf("webgpu");
  },
});
