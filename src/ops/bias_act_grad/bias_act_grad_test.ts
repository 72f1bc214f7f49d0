// BiasActGrad (src/ops/bias_act_grad/bias_act_grad.ts): dz = dy masked by y > 0 (relu) or dy (linear), and
// dbias = the column sums of dz, in one dispatch.
//   1. fast-check over shapes (rank 1-4, channels 1-40, multiples of 4 or not, so both the vec4
//      and the scalar kernel and partial channel tiles run), relu and linear, on webgpu (outputs
//      NaN-poisoned) and on the cpu kernel, against the float64 reference (bias_act_grad_ref.ts);
//      pinned: baseline's layers at batch 128 (128x26x26x32, 128x11x11x64, 128x128, 128x10).
//   2. One dispatch per call; rows above the loop cap and non-kernel backends take tfjs's ops
//      with the same results; zero rows give dbias = 0; bad inputs name the tensor.
// Tolerances: dz is a copy of dy or 0, so exact. dbias is a float32 sum of `rows` terms in
// [-1, 1] (16 lane sums of rows / 16 terms, then a tree): atol 1e-6 * rows, rtol 1e-5, above
// float32's rounding of such sums (about rows * 2^-24 * the largest partial sum).

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import {
  BIAS_ACT_GRAD,
  BIAS_ACT_GRAD_MAX_ROWS,
  biasActGrad,
  type BiasActivation,
} from "./bias_act_grad.ts";
import { biasActGradRef } from "./bias_act_grad_ref.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import {
  checkOp,
  cpuPropertyTest,
  gpuTest,
  runs,
  seededUniform,
} from "../../../test/helpers/op_check.ts";

interface Case {
  shape: number[];
  activation: BiasActivation;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  shape: fc.tuple(
    fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 0, maxLength: 3 }),
    fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(4, 8, 16, 32, 36)),
  ).map(([lead, c]) => [...lead, c]),
  activation: fc.constantFrom<BiasActivation>("relu", "linear"),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

const BASELINE_LAYERS: Case[] = [
  { shape: [128, 26, 26, 32], activation: "relu", seed: 41 },
  { shape: [128, 11, 11, 64], activation: "relu", seed: 42 },
  { shape: [128, 128], activation: "relu", seed: 43 },
  { shape: [128, 10], activation: "linear", seed: 44 },
];

const describe = (c: Case) => `[${c.shape}] ${c.activation} seed ${c.seed}`;

/** dy in [-1, 1); y with about half of its elements 0 (ReLU outputs), never negative. */
function caseData(c: Case) {
  const size = c.shape.reduce((a, b) => a * b, 1);
  const dy = seededUniform(size, c.seed);
  const y = seededUniform(size, c.seed + 1).map((v) => Math.max(v, 0));
  return { dy, y };
}

/** Runs the op (through biasActGrad) on the current backend; dz and dbias values. */
async function runOp(c: Case) {
  const { dy, y } = caseData(c);
  const dyT = tf.tensor(dy, c.shape), yT = tf.tensor(y, c.shape);
  const { dz, dbias } = biasActGrad(dyT, yT, c.activation);
  if (c.activation === "linear") assert.equal(dz, dyT, "linear: dz is dy itself");
  const out = { dz: await dz.data(), dbias: await dbias.data() };
  tf.dispose([dyT, yT, dz, dbias]);
  return out;
}

async function check(c: Case, label: string) {
  const { dy, y } = caseData(c);
  const rows = dy.length / c.shape[c.shape.length - 1];
  const expected = biasActGradRef(dy, y, c.shape[c.shape.length - 1], c.activation);
  const actual = await runOp(c);
  checkOp(actual, { ...expected }, {
    dz: { atol: 0, rtol: 0 },
    dbias: { atol: 1e-6 * rows, rtol: 1e-5 },
  }, label + describe(c));
}

gpuTest(
  "biasActGrad: the webgpu kernel matches the reference (random shapes, baseline's layers)",
  async () => {
    for (const c of BASELINE_LAYERS) await check(c, "webgpu ");
    await fc.assert(fc.asyncProperty(caseArb, (c) => check(c, "webgpu ")), {
      seed: 1511,
      numRuns: runs(40),
    });
  },
);

cpuPropertyTest(
  "biasActGrad: the cpu kernel matches the reference and tfjs's step, mul and sum",
  caseArb,
  async (c) => {
    await check(c, "cpu ");
    const { dy, y } = caseData(c);
    const dyT = tf.tensor(dy, c.shape), yT = tf.tensor(y, c.shape);
    const dz = c.activation === "relu" ? tf.mul(dyT, tf.step(yT)) : dyT;
    const dbias = tf.sum(dz, c.shape.slice(0, -1).map((_, i) => i));
    const stock = { dz: await dz.data(), dbias: await dbias.data() };
    tf.dispose([dyT, yT, dz, dbias]);
    const rows = dy.length / c.shape[c.shape.length - 1];
    checkOp(await runOp(c), stock, {
      dz: { atol: 0, rtol: 0 },
      dbias: { atol: 1e-6 * rows, rtol: 1e-5 },
    }, "cpu vs tfjs " + describe(c));
  },
  { seed: 1512, numRuns: runs(20) },
);

gpuTest(
  "biasActGrad: one dispatch; rows above the cap take tfjs's ops; zero rows; bad inputs",
  async () => {
    const dy = tf.tensor(seededUniform(6 * 8, 3), [6, 8]);
    const y = tf.relu(tf.tensor(seededUniform(6 * 8, 4), [6, 8]));
    for (const activation of ["relu", "linear"] as const) {
      let out: ReturnType<typeof biasActGrad> | undefined;
      const { count } = countDispatches(() => (out = biasActGrad(dy, y, activation)));
      assert.equal(count?.total, 1, `${activation}: ${JSON.stringify(count)}`);
      if (activation === "relu") out!.dz.dispose();
      out!.dbias.dispose();
    }
    // Above the cap: the stock path (step, mul, transpose, reduce), same values.
    const big: Case = { shape: [BIAS_ACT_GRAD_MAX_ROWS + 1, 1], activation: "relu", seed: 5 };
    await check(big, "above the cap ");
    const empty = biasActGrad(tf.zeros([0, 3]), tf.zeros([0, 3]), "relu");
    assert.deepEqual(Array.from(await empty.dbias.data()), [0, 0, 0]);
    assert.deepEqual(empty.dz.shape, [0, 3]);
    tf.dispose([empty.dz, empty.dbias]);
    const run = (inputs: tf.NamedTensorMap, activation: string) =>
      tf.engine().runKernel(BIAS_ACT_GRAD, inputs, { activation });
    assert.throws(() => run({ dy }, "relu"), /BiasActGrad: relu needs input y/);
    assert.throws(
      () => run({ dy, y: tf.zeros([6, 4]) }, "relu"),
      /BiasActGrad: y must be float32 of dy's shape \[6,8\], got \[6,4\]/,
    );
    assert.throws(() => run({ dy }, "tanh"), /activation must be relu or linear, got tanh/);
    tf.dispose([dy, y]);
  },
);
