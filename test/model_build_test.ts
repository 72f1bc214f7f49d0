// Model construction: sizes, seeded init (same for fused and stock ops), modes, L2 penalty.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { architecture, convBnReluShapes, createModel, type Model } from "../src/model/model.ts";

async function values(m: Model): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const v of m.variables) out.set(v.name, (await v.variable.data()) as Float32Array);
  return out;
}

Deno.test("models: parameter counts and the wide model's 1.5M budget", async () => {
  await initTf("cpu");
  const sizes: Record<string, number> = {};
  for (const name of ["baseline", "enhanced", "wide"] as const) {
    const m = createModel(name, { ops: "stock" });
    sizes[name] = m.paramCount;
    m.dispose();
  }
  // baseline: conv 1->32 (288+32), conv 32->64 (18432+64), dense 1600->128, dense 128->10.
  assert.equal(sizes.baseline, 320 + 18496 + 1600 * 128 + 128 + 1290);
  assert.ok(sizes.enhanced > sizes.baseline && sizes.enhanced < 600_000, `${sizes.enhanced}`);
  assert.ok(sizes.wide > sizes.enhanced && sizes.wide < 1_500_000, `${sizes.wide}`);
});

Deno.test("models: same seed gives the same weights for fused and stock ops; another seed differs", async () => {
  await initTf("cpu");
  const fused = createModel("enhanced", { ops: "fused", seed: 5 });
  const stock = createModel("enhanced", { ops: "stock", seed: 5 });
  const other = createModel("enhanced", { ops: "fused", seed: 6 });
  const [a, b, c] = await Promise.all([values(fused), values(stock), values(other)]);
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.deepEqual(v, b.get(k), k);
  assert.notDeepEqual(a.get("block1/conv1/kernel"), c.get("block1/conv1/kernel"));
  // He init: std of a 3x3x32 kernel's weights is near sqrt(2 / 288).
  const w = a.get("block1/conv2/kernel")!;
  const std = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
  assert.ok(Math.abs(std / Math.sqrt(2 / 288) - 1) < 0.1, `std ${std}`);
  [fused, stock, other].forEach((m) => m.dispose());
});

Deno.test("enhanced: logits and probabilities; training mode updates BN moving statistics", async () => {
  await initTf("cpu");
  const m = createModel("enhanced", { ops: "stock", seed: 1 });
  const x = tf.randomUniform([2, 28, 28, 1], 0, 1, "float32", 3) as tf.Tensor4D;
  const probs = m.predict(x);
  assert.deepEqual(probs.shape, [2, 10]);
  const rowSums = await tf.sum(probs, 1).data();
  rowSums.forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
  const mean = m.variables.find((v) => v.name === "block1/conv1/moving_mean")!;
  assert.equal(mean.trainable, false);
  assert.ok(!m.trainableVariables.includes(mean.variable));
  const before = await mean.variable.data();
  tf.dispose(m.apply(x, false));
  assert.deepEqual(await mean.variable.data(), before, "inference must not touch statistics");
  tf.dispose(m.apply(x, true));
  const after = await mean.variable.data();
  assert.ok(after.some((v, i) => v !== before[i]), "training mode updates moving mean");
  // momentum 0.99 from zero: moving mean = 0.01 * batch mean, so it stays small.
  assert.ok(after.every((v) => Math.abs(v) < 0.1));
  tf.dispose([x, probs]);
  m.dispose();
});

Deno.test("models: L2 penalty is l2 * sum of squared kernels (not biases or BN)", async () => {
  await initTf("cpu");
  const m = createModel("baseline", { l2: 1e-3 });
  let want = 0;
  for (const v of m.variables) {
    if (!v.name.endsWith("/kernel")) continue;
    for (const w of (await v.variable.data()) as Float32Array) want += w * w;
  }
  const got = m.regularizationLoss()!;
  assert.ok(Math.abs((await got.data())[0] - 1e-3 * want) < 1e-6 * want);
  got.dispose();
  m.dispose();
  const none = createModel("baseline", { l2: 0 });
  assert.equal(none.regularizationLoss(), null);
  none.dispose();
});

Deno.test("architecture: the conv shapes bench and the presets read match the built variables", async () => {
  await initTf("cpu");
  for (const name of ["baseline", "enhanced", "wide"] as const) {
    const m = createModel(name, { ops: "stock" });
    const kernels = new Map(m.variables.map((v) => [v.name, v.variable.shape]));
    const convs = architecture(name).flatMap((l) =>
      l.kind === "conv-relu" || l.kind === "conv-bn-relu" ? [l] : []
    );
    assert.ok(convs.length > 0, name);
    convs.forEach(({ name: layer, shape: s }, i) => {
      assert.deepEqual(
        kernels.get(`${layer}/kernel`),
        [s.k, s.k, s.cin, s.cout],
        `${name} ${layer}`,
      );
      // Consecutive convs chain: each one's input channels are the previous one's outputs.
      if (i > 0) assert.equal(s.cin, convs[i - 1].shape.cout, `${name} ${layer}: input channels`);
    });
    assert.equal(convBnReluShapes(name).length, name === "baseline" ? 0 : convs.length);
    m.dispose();
  }
  assert.deepEqual(
    convBnReluShapes("enhanced").map((s) => `${s.h}x${s.w}x${s.cin}->${s.cout}`),
    ["28x28x1->32", "28x28x32->32", "14x14x32->64", "14x14x64->64"],
    "the README's enhanced model",
  );
});
