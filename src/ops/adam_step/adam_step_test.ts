// The fused Adam step (AdamStep kernel, FusedAdam optimizer):
//   1. webgpu kernel vs the CPU reference on random variable sets (fast-check, seeded): sizes
//      1..2000 across group boundaries, decayed or not, random lr/l2/step.
//   2. FusedAdam vs tf.train.adam over a few steps of the baseline model with L2: weights and
//      moments, on cpu (bit for bit) and webgpu (within a few ulps).
//   3. Checkpoints: saved by tf.train.adam, resumed by FusedAdam (and the reverse), continue as
//      the uninterrupted run.
//   4. The dispatch counter on a known sequence of ops, and the step's dispatch plan.
//
// The new weights are fresh outputs, poisoned with NaN (setPoisonOutputs). The packed moments
// are updated in place, so there an element that still holds its input value where the
// reference moved it counts as skipped (random nonzero gradients move nearly every element).

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { initTf } from "../../tf/setup.ts";
import { adamStep, type AdamStepAttrs, packedOffsets } from "./adam_step.ts";
import { adamStepRef } from "./adam_step_ref.ts";
import { adamGroups, BINDINGS_PER_VARIABLE, SHARED_BINDINGS } from "./adam_step_webgpu.ts";
import { createModel, type Model } from "../../model/model.ts";
import { makeTrainStep } from "../../train/step.ts";
import { createAdam, FusedAdam, type OptimizerKind } from "../../train/optimizer.ts";
import { readCheckpoint, restoreWeights } from "../../model/checkpoint.ts";
import { restoreOptimizer, saveTrainingCheckpoint } from "../../train/checkpointing.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import { assertClose } from "../../../test/helpers/compare.ts";
import { GPU_TEST, withGpu as onGpu } from "../../../test/helpers/op_check.ts";
import { Rng } from "../../random.ts";

// ---- 1. webgpu kernel vs CPU reference ---------------------------------------------------------

interface StepCase {
  sizes: number[];
  decay: boolean[];
  lr: number;
  l2: number;
  /** Step number t: beta powers beta^t. */
  t: number;
  seed: number;
}

const caseArb: fc.Arbitrary<StepCase> = fc.integer({ min: 1, max: 9 }).chain((k) =>
  fc.record({
    sizes: fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: k, maxLength: k }),
    decay: fc.array(fc.boolean(), { minLength: k, maxLength: k }),
    lr: fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
    l2: fc.constantFrom(0, 1e-4, 5e-3),
    t: fc.integer({ min: 1, max: 5000 }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
);

function caseData(c: StepCase) {
  const rng = new Rng(c.seed);
  const rnd = () => rng.next();
  const { total } = packedOffsets(c.sizes);
  const state = new Float32Array(2 * total);
  // m ~ U(-0.1, 0.1), v ~ U(0, 0.01): a run's moments; gradients nonzero so every element moves.
  for (let i = 0; i < total; i++) state[i] = (rnd() - 0.5) * 0.2;
  for (let i = total; i < 2 * total; i++) state[i] = rnd() * 0.01;
  const gradOf = () => (rnd() < 0.5 ? -1 : 1) * (0.01 + rnd());
  const grads = c.sizes.map((n) => Float32Array.from({ length: n }, gradOf));
  const weights = c.sizes.map((n) => Float32Array.from({ length: n }, () => (rnd() - 0.5) * 2));
  const attrs: AdamStepAttrs = {
    decay: c.decay,
    l2: c.l2,
    lr: c.lr,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    accBeta1: Math.fround(0.9 ** c.t),
    accBeta2: Math.fround(0.999 ** c.t),
  };
  return { state, grads, weights, attrs };
}

/**
 * Tolerances: WGSL allows 2.5 ulp for division and inherits sqrt's error from inverseSqrt
 * (2 ulp), and a compiler may contract a * b + c into an FMA. m' and v' are two roundings deep
 * (rtol 4 ulp = 5e-7); w' = w + delta with delta ~ lr (up to lr / (1 - beta1^t) at small t),
 * a few roundings deep: atol 1e-6 * lr-relative on delta, plus 2 ulp of w.
 */
async function checkGpuAgainstRef(c: StepCase) {
  const d = caseData(c);
  const state = tf.variable(tf.tensor1d(d.state.slice()), false);
  const grads = d.grads.map((g) => tf.tensor(g.slice(), [g.length]));
  const weights = d.weights.map((w) => tf.tensor(w.slice(), [w.length]));
  const next: tf.Tensor[] = [];
  try {
    next.push(...adamStep(state, grads, weights, d.attrs));
    const gotState = await state.data() as Float32Array;
    const gotWeights = await Promise.all(next.map((w) => w.data() as Promise<Float32Array>));
    const expState = d.state.slice();
    const expWeights = d.weights.map((w) => w.slice());
    adamStepRef(expState, d.grads, expWeights, d.attrs);
    const label = `sizes [${c.sizes}] decay [${c.decay.map(Number)}] lr ${c.lr} t ${c.t}`;
    assertClose(gotState, expState, { atol: 1e-12, rtol: 5e-7 }, `${label}: moments`);
    gotWeights.forEach((w, i) => {
      const bound = c.lr / (1 - d.attrs.accBeta1);
      assertClose(w, expWeights[i], { atol: 1e-6 * bound, rtol: 2.4e-7 }, `${label}: w${i}`);
    });
    // Skipped: still the input value where the reference moved it (a tiny update may round
    // to no change at all, in both).
    const skipped = (got: ArrayLike<number>, input: ArrayLike<number>, exp: ArrayLike<number>) =>
      Array.from(got).findIndex((x, j) => x === input[j] && exp[j] !== input[j]);
    assert.equal(skipped(gotState, d.state, expState), -1, `${label}: a moment was not written`);
    gotWeights.forEach((w, i) =>
      assert.equal(skipped(w, d.weights[i], expWeights[i]), -1, `${label}: w${i} not written`)
    );
  } finally {
    tf.dispose([state, ...grads, ...weights, ...next]);
  }
}

Deno.test({
  name: "AdamStep: webgpu kernel matches the CPU reference on random variable sets",
  ...GPU_TEST,
  fn: () =>
    onGpu(async () => {
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => await checkGpuAgainstRef(c)),
        { seed: 20261201, numRuns: 25 },
      );
    }),
});

Deno.test("AdamStep: groups fit the binding limit and cover every variable once, in order", () => {
  fc.assert(
    fc.property(
      fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 5, max: 16 }),
      (decay, maxBuffers) => {
        const sizes = decay.map((_, i) => i + 1);
        const groups = adamGroups(sizes, decay, maxBuffers);
        assert.deepEqual(groups.flat().map((s) => s.variable), sizes.map((_, i) => i));
        assert.deepEqual(groups.flat().map((s) => s.decay), decay);
        const perGroup = Math.floor((maxBuffers - SHARED_BINDINGS) / BINDINGS_PER_VARIABLE);
        // The state, the step scalars and g, w, w' per variable fit; every group but the last
        // is full.
        groups.forEach((g, i) => {
          assert.ok(SHARED_BINDINGS + BINDINGS_PER_VARIABLE * g.length <= maxBuffers);
          if (i + 1 < groups.length) assert.equal(g.length, perGroup);
        });
      },
    ),
    { seed: 3, numRuns: 200 },
  );
  assert.throws(() => adamGroups([1], [false], 4), /too few/);
});

// ---- 2. FusedAdam vs tf.train.adam -------------------------------------------------------------

function batch(n: number, seed: number): [tf.Tensor4D, tf.Tensor2D] {
  return tf.tidy(() => {
    const x = tf.randomUniform([n, 28, 28, 1], 0, 1, "float32", seed) as tf.Tensor4D;
    const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7 + seed) % 10), "int32");
    return [x, tf.cast(tf.oneHot(labels, 10), "float32") as tf.Tensor2D];
  });
}

interface Trained {
  model: Model;
  optimizer: tf.Optimizer;
  losses: number[];
}

async function train(
  kind: OptimizerKind,
  steps: number,
  x: tf.Tensor4D,
  y: tf.Tensor2D,
  from?: { model: Model; optimizer: tf.Optimizer },
): Promise<Trained> {
  const model = from?.model ?? createModel("baseline", { seed: 5, l2: 2e-3 });
  const optimizer = from?.optimizer ?? createAdam(model, 2e-3, kind);
  const step = makeTrainStep(model, optimizer);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = step(x, y);
    losses.push((await loss.data())[0]);
    loss.dispose();
  }
  return { model, optimizer, losses };
}

async function snapshot(t: Trained) {
  const weights = await Promise.all(t.model.trainableVariables.map((v) => v.data()));
  const named = await t.optimizer.getWeights();
  const moments = await Promise.all(named.map((n) => n.tensor.data()));
  const names = named.map((n) => n.name.replace(/^model\d+\//, "")); // per-instance prefix
  for (const n of named) if (!(n.tensor instanceof tf.Variable)) n.tensor.dispose();
  return { weights, moments, names };
}

function dispose(...ts: Trained[]) {
  for (const t of ts) {
    t.optimizer.dispose();
    t.model.dispose();
  }
}

/**
 * On cpu every op rounds like the reference: exact. On webgpu the kernel may differ from the
 * separate ops by a few ulps per step (see checkGpuAgainstRef), and 5 steps carry that into
 * the gradients: atol 1e-7 (weights ~0.1, lr 2e-3), rtol 1e-5. llvmpipe gives 0 difference.
 */
const GPU_STEP_TOL = { atol: 1e-7, rtol: 1e-5 };

async function lockstep(exact: boolean, n: number, steps: number) {
  const before = tf.memory().numTensors;
  const [x, y] = batch(n, 1);
  const ref = await train("tfjs", steps, x, y);
  const fused = await train("fused", steps, x, y);
  try {
    assert.ok(fused.optimizer instanceof FusedAdam && !(ref.optimizer instanceof FusedAdam));
    assert.equal(fused.optimizer.iterations, steps);
    const a = await snapshot(ref), b = await snapshot(fused);
    assert.deepEqual(b.names, a.names, "getWeights: tf.train.adam's names and order");
    const tol = exact ? { atol: 0, rtol: 0 } : GPU_STEP_TOL;
    assertClose(fused.losses, ref.losses, tol, "losses");
    a.weights.forEach((w, i) => assertClose(b.weights[i], w, tol, `weights ${i}`));
    a.moments.forEach((m, i) => assertClose(b.moments[i], m, tol, a.names[i]));
    assert.ok(fused.losses[steps - 1] < fused.losses[0], `loss falls: ${fused.losses}`);
  } finally {
    dispose(ref, fused);
    tf.dispose([x, y]);
  }
  assert.equal(tf.memory().numTensors, before, "models and optimizers dispose everything");
}

Deno.test({
  name: "FusedAdam: 3 baseline steps with L2 equal tf.train.adam's bit for bit on cpu",
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    await lockstep(true, 2, 3); // batch 2: the cpu backend's conv backward is slow
  },
});

Deno.test({
  name: "FusedAdam: 5 baseline steps with L2 match tf.train.adam on webgpu",
  ...GPU_TEST,
  fn: () => onGpu(() => lockstep(false, 8, 5)),
});

// ---- 3. Checkpoints across optimizers ----------------------------------------------------------

async function resumeAcross(saver: OptimizerKind, resumer: OptimizerKind) {
  const dir = await Deno.makeTempDir({ prefix: "fmnist-adam-ck-" });
  const [x, y] = batch(6, 2);
  try {
    const first = await train(saver, 3, x, y);
    await saveTrainingCheckpoint(`${dir}/last`, first.model, first.optimizer, {
      config: {},
      state: {},
    });
    const uninterrupted = await train(saver, 2, x, y, first);
    const ck = await readCheckpoint(`${dir}/last`);
    assert.equal(ck.meta.optimizer?.iterations, 3);
    const model = createModel("baseline", { seed: 99, l2: 2e-3 }); // other init: restored below
    const optimizer = createAdam(model, 2e-3, resumer);
    restoreWeights(model, ck);
    await restoreOptimizer(optimizer, model, ck);
    assert.equal(optimizer.iterations, 3);
    const resumed = await train(resumer, 2, x, y, { model, optimizer });
    const a = await snapshot(uninterrupted), b = await snapshot(resumed);
    const tol = GPU_STEP_TOL;
    assertClose(resumed.losses, uninterrupted.losses, tol, `${saver} -> ${resumer}`);
    a.weights.forEach((w, i) => assertClose(b.weights[i], w, tol, `weights ${i}`));
    a.moments.forEach((m, i) => assertClose(b.moments[i], m, tol, a.names[i]));
    dispose(uninterrupted, resumed);
  } finally {
    tf.dispose([x, y]);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "checkpoints: saved by tf.train.adam, resumed by FusedAdam (and back) continue alike",
  ...GPU_TEST,
  fn: () =>
    onGpu(async () => {
      await resumeAcross("tfjs", "fused"); // a run saved before the fused optimizer existed
      await resumeAcross("fused", "tfjs");
    }),
});

// ---- 4. Dispatch counting ----------------------------------------------------------------------

Deno.test({
  name: "dispatch counter: known ops, and AdamStep's plan (one dispatch per group)",
  ...GPU_TEST,
  fn: () =>
    onGpu(async () => {
      const a = tf.randomUniform([64, 64], -1, 1, "float32", 1);
      const b = tf.randomUniform([64, 64], -1, 1, "float32", 2);
      await a.data();
      await b.data();
      const { result, count } = countDispatches(() =>
        tf.tidy(() => tf.relu(tf.add(tf.mul(a, b), a)))
      );
      assert.equal(count?.total, 3, `mul, add, relu: ${[...count!.byProgram]}`);
      // Nested counts: the inner sees its own, the outer both.
      const outer = countDispatches(() => {
        const inner = countDispatches(() => tf.neg(a));
        assert.equal(inner.count?.total, 1);
        return tf.tidy(() => tf.matMul(inner.result, b));
      });
      assert.ok(outer.count!.total >= 2, `neg + matMul: ${[...outer.count!.byProgram]}`);
      tf.dispose([result, outer.result]);

      const sizes = [10, 300, 7, 4000, 33];
      const decay = [true, false, true, true, false];
      const state = tf.variable(tf.zeros([2 * sizes.reduce((x, y) => x + y)]), false);
      const ws = sizes.map((n, i) => tf.variable(tf.ones([n]), false, `adam-count-w${i}`));
      const gs = sizes.map((n) => tf.fill([n], 0.5));
      const attrs: AdamStepAttrs = {
        decay,
        l2: 1e-3,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-7,
        accBeta1: 0.9,
        accBeta2: 0.999,
      };
      const step = countDispatches(() => adamStep(state as tf.Tensor1D, gs, ws, attrs));
      tf.dispose(step.result);
      const limit = (tf.backend() as WebGPUBackend).device.limits.maxStorageBuffersPerShaderStage;
      const groups = adamGroups(sizes, decay, limit).length;
      assert.equal(groups, Math.ceil(sizes.length / Math.floor((limit - 1) / 3)));
      assert.equal(step.count?.total, groups);
      assert.equal(step.count?.byProgram.get("AdamUpdateProgram"), groups);
      tf.dispose([a, b, state, ...ws, ...gs]);
    }),
});
