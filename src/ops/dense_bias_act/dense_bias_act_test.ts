// Dense + bias + ReLU/linear (src/ops/dense_bias_act/dense_bias_act.ts), forward and gradients (x, kernel, bias
// through tf.grads of sum(y * dy)):
//   1. the generated kernels (random shapes, random tile config per view, K and C often not
//      multiples of 4; pinned: the models' dense shapes at batch 128, K = 3136 and K = 3137 for
//      the loop bounds) and the naive oracle kernels vs the plain-loop CPU reference
//      (dense_bias_act_ref.ts), NaN-poisoned outputs;
//   2. the op on the cpu backend (= the reference) vs tfjs's fused matMul and its gradients;
//   3. input validation, the FMNIST_DENSE rule, no tensor leaks.
// Tolerances: |a - e| <= atol + rtol*|e|, atol = 1e-6 * (terms behind one element: K for y,
// C for dx, N for dkernel and dbias), rtol 1e-4. Inputs are U(-1, 1), so every term is <= 1 and
// float32 rounding of a T-term sum stays below T * 2^-24 * the largest partial sum. Outputs whose
// pre-activation lies within 1e-3 of 0 get dy = 0: float32 and float64 may disagree on their ReLU
// mask there.

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import {
  defaultDenseImpl,
  DENSE_IMPLS,
  type DenseActivation,
  denseBiasAct,
  denseUsesGemm,
} from "./dense_bias_act.ts";
import { cachedDenseTable, denseProblems, tuneDenseProblems } from "../autotune/autotune_dense.ts";
import { adapterIdentity, AutotuneCache } from "../autotune/autotune.ts";
import { denseBiasActGradRef, denseBiasActRef } from "./dense_bias_act_ref.ts";
import { allConfigs, type TileConfig } from "../conv/tiling.ts";
import {
  backendAdapterKind,
  defaultTilePlan,
  pinTileConfig,
  type TilePlan,
  tilePlan,
} from "../conv/tile_plan.ts";
import {
  checkOp,
  cpuPropertyTest,
  GPU_TEST,
  gpuPropertyTest,
  gpuTest,
  type OpTolerance,
  outputAndGrads,
  runs,
  seededUniform,
  withGpu,
} from "../../../test/helpers/op_check.ts";
import { withFlags } from "../../flags.ts";
import { withLoopCapped } from "../backend/loop_cap.ts";

interface DenseCase {
  n: number;
  k: number;
  c: number;
  activation: DenseActivation;
  seed: number;
}

interface Data {
  d: DenseCase;
  x: Float32Array;
  kernel: Float32Array;
  bias: Float32Array;
  dy: Float32Array;
}

const RELU_MARGIN = 1e-3;

function caseData(d: DenseCase): Data {
  const x = seededUniform(d.n * d.k, d.seed);
  const kernel = seededUniform(d.k * d.c, d.seed + 1);
  const bias = seededUniform(d.c, d.seed + 2, -0.5, 0.5);
  const dy = seededUniform(d.n * d.c, d.seed + 3);
  if (d.activation === "relu") {
    const z = denseBiasActRef(x, kernel, bias, d.n, d.k, d.c, "linear");
    for (let i = 0; i < z.length; i++) if (Math.abs(z[i]) < RELU_MARGIN) dy[i] = 0;
  }
  return { d, x, kernel, bias, dy };
}

function tolerances({ d }: Data, scale = 1): Record<string, OpTolerance> {
  const rtol = 1e-4 * scale;
  return {
    y: { atol: 1e-6 * scale * d.k, rtol },
    dx: { atol: 1e-6 * scale * d.c, rtol },
    dkernel: { atol: 1e-6 * scale * d.n, rtol },
    dbias: { atol: 1e-6 * scale * d.n, rtol },
  };
}

type Grads = Record<"y" | "dx" | "dkernel" | "dbias", Float32Array>;
type DenseFn = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor;

/** y and tf.grads of sum(f(x, kernel, bias) * dy) on the current backend. */
async function runOp(data: Data, f: DenseFn): Promise<Grads> {
  const { d } = data;
  const x = tf.tensor2d(data.x, [d.n, d.k]);
  const w = tf.tensor2d(data.kernel, [d.k, d.c]);
  const b = tf.tensor1d(data.bias);
  const dy = tf.tensor2d(data.dy, [d.n, d.c]);
  const [y, dx, dkernel, dbias] = await outputAndGrads(f, [x, w, b], dy);
  tf.dispose([x, w, b, dy]);
  return { y, dx, dkernel, dbias };
}

const ours = (data: Data, tiles?: TilePlan) =>
  runOp(data, (x, w, b) => denseBiasAct(x, w, b, data.d.activation, tiles));

function reference(data: Data): Grads {
  const { d } = data;
  const y = denseBiasActRef(data.x, data.kernel, data.bias, d.n, d.k, d.c, d.activation);
  return {
    y,
    ...denseBiasActGradRef(data.dy, y, data.x, data.kernel, d.n, d.k, d.c, d.activation),
  };
}

const describe = (d: DenseCase) => `${d.n}x${d.k}->${d.c} ${d.activation} seed ${d.seed}`;

/** Our op (under `configs` pinned, else the defaults) against the reference. */
async function checkOurs(d: DenseCase, label: string, configs: TileConfig[] = []): Promise<void> {
  const data = caseData(d);
  const tiles = configs.reduce(pinTileConfig, defaultTilePlan(tf.backend()));
  const got = await ours(data, tiles);
  checkOp({ ...got }, { ...reference(data) }, tolerances(data), label + describe(d));
}

/** Small random shapes: K and C often not multiples of 4, partial tiles everywhere. */
const caseArb: fc.Arbitrary<DenseCase> = fc.record({
  n: fc.integer({ min: 1, max: 40 }),
  k: fc.integer({ min: 1, max: 90 }),
  c: fc.integer({ min: 1, max: 40 }),
  activation: fc.constantFrom<DenseActivation>("relu", "linear"),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

/** One tile configuration per view (software and discrete candidates), chosen at random. */
const configsArb = fc.tuple(
  fc.constantFrom(...allConfigs("fwd")),
  fc.constantFrom(...allConfigs("bwdData")),
  fc.constantFrom(...allConfigs("bwdFilter")),
);

/** The models' dense layers at batch 128, and K = 3137 (scalar loads: K reduction steps). */
const MODEL_SHAPES: DenseCase[] = [
  { n: 128, k: 3136, c: 128, activation: "relu", seed: 31 },
  { n: 128, k: 1600, c: 128, activation: "relu", seed: 32 },
  { n: 128, k: 128, c: 10, activation: "linear", seed: 33 },
  { n: 64, k: 3137, c: 10, activation: "linear", seed: 34 },
];

gpuPropertyTest(
  "denseBiasAct: generated kernels match the CPU reference (random shapes and tile configs, model shapes)",
  fc.record({ d: caseArb, configs: configsArb }),
  async ({ d, configs }) => {
    await checkOurs(d, `${configs.map((c) => c.id).join(" ")} `, configs);
  },
  { seed: 2011, numRuns: runs(25) },
);

Deno.test({
  name: "denseBiasAct: the models' dense shapes (default configs) and the naive kernels",
  ...GPU_TEST,
  fn: async () => {
    await withGpu(async () => {
      for (const d of MODEL_SHAPES) await checkOurs(d, "default ");
    });
    await withGpu(async () => {
      for (const d of [MODEL_SHAPES[2], { n: 5, k: 37, c: 7, activation: "relu", seed: 35 }]) {
        await checkOurs(d as DenseCase, "naive ");
      }
    }, { naive: true });
  },
});

cpuPropertyTest(
  "denseBiasAct: the cpu kernels match tfjs's fused matMul and its gradients",
  caseArb,
  async (d) => {
    const data = caseData(d);
    const stock = await runOp(
      data,
      (a, b, bias) => tf.fused.matMul({ a, b, bias, activation: d.activation }),
    );
    // tfjs sums in float32: 10x the tolerances.
    checkOp({ ...(await ours(data)) }, { ...stock }, tolerances(data, 10), describe(d));
  },
  { seed: 2012, numRuns: runs(20) },
);

Deno.test("denseBiasAct: bad inputs throw errors naming the tensor", async () => {
  await initTf("cpu");
  const x = tf.zeros([2, 5]) as tf.Tensor2D;
  const w = tf.zeros([5, 3]) as tf.Tensor2D;
  assert.throws(
    () => denseBiasAct(x, w, tf.zeros([4]) as tf.Tensor1D, "relu"),
    /DenseBiasAct: bias must have shape \[3\], got \[4\]/,
  );
  assert.throws(
    () => denseBiasAct(x, tf.zeros([4, 3]) as tf.Tensor2D, tf.zeros([3]) as tf.Tensor1D, "relu"),
    /kernel must have 5 rows/,
  );
  assert.throws(
    () => denseBiasAct(x, w, tf.zeros([3]) as tf.Tensor1D, "tanh" as DenseActivation),
    /activation must be relu or linear, got tanh/,
  );
  // The K/C limit holds where the adapter caps loops (lavapipe 22; injected here so that the
  // check runs on every adapter); src/ops/backend/loop_cap_test.ts covers the uncapped case.
  const wide = tf.zeros([1, 30001]) as tf.Tensor2D;
  assert.throws(
    () =>
      withLoopCapped(true, () =>
        denseBiasAct(
          wide,
          tf.zeros([30001, 1]) as tf.Tensor2D,
          tf.zeros([1]) as tf.Tensor1D,
          "linear",
        )),
    /K and C must be <= 30000, got 30001, 1/,
  );
  wide.dispose();
  tf.dispose([x, w]);
});

gpuTest("denseBiasAct: no tensor leaks across forward + gradient steps on webgpu", async () => {
  const data = caseData({ n: 6, k: 20, c: 12, activation: "relu", seed: 7 });
  await ours(data);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await ours(data);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test({
  name: "denseBiasAct: FMNIST_DENSE, tuned choices and the rule pick our GEMM or tfjs's matMul",
  ...GPU_TEST,
  fn: async () => {
    await withFlags({ FMNIST_DENSE: "auto" }, async () => {
      await initTf("cpu");
      assert.equal(denseUsesGemm(undefined, 8, 20, 6, "relu"), false, "cpu backend: tfjs's matMul");
      await initTf("webgpu");
      const kind = backendAdapterKind(tf.backend());
      const rule = defaultDenseImpl(kind) === "gemm";
      const untuned = `untuned on a ${kind} adapter`;
      assert.equal(denseUsesGemm(undefined, 8, 20, 6, "relu"), rule, untuned);
      assert.equal(denseUsesGemm(tilePlan(kind), 8, 20, 6, "relu"), rule, untuned);

      // Tuning (tiny shapes, in-memory cache): one row per key, both candidates timed, and the
      // plan from the cache follows each choice.
      const cache = AutotuneCache.inMemory();
      const adapter = adapterIdentity({ vendor: "test", description: "dense test" });
      const layers = [
        { name: "a", k: 20, c: 6, activation: "relu" as const },
        { name: "b", k: 20, c: 6, activation: "relu" as const },
        { name: "c", k: 9, c: 3, activation: "linear" as const },
      ];
      const problems = denseProblems(layers, 8);
      assert.deepEqual(problems.map((p) => p.key), ["dense:20>6:relu:b8", "dense:9>3:linear:b8"]);
      const opts = { cache, adapter, kind, timing: { warmup: 0, repeats: 1 } };
      const tuned = await tuneDenseProblems(problems, { ...opts, setting: "on" });
      const planOfCache = () => tilePlan(kind, { dense: cachedDenseTable(cache, adapter) });
      let plan = planOfCache();
      for (const r of tuned) {
        assert.equal(r.source, "tuned");
        assert.deepEqual(Object.keys(r.timings).sort(), [...DENSE_IMPLS].sort());
        const p = r.problem;
        assert.equal(denseUsesGemm(plan, p.batch, p.k, p.c, p.activation), r.choice === "gemm");
      }
      // A cached entry decides over the rule, for its batch bucket only.
      const entry = (choice: string) => ({
        choice,
        timings: { gemm: 1, matmul: 2 },
        clock: "host-sync",
        date: "2026-12-01",
      });
      cache.record(adapter, problems[0].key, entry(rule ? "matmul" : "gemm"));
      cache.record(adapter, problems[1].key, entry(rule ? "gemm" : "matmul"));
      const again = await tuneDenseProblems(problems, { ...opts, setting: "on" });
      assert.ok(again.every((r) => r.source === "cache"));
      plan = planOfCache();
      assert.equal(denseUsesGemm(plan, 8, 20, 6, "relu"), !rule);
      assert.equal(denseUsesGemm(plan, 7, 20, 6, "relu"), !rule, "7 and 8 share the bucket");
      assert.equal(denseUsesGemm(plan, 9, 20, 6, "relu"), rule, "another bucket: the rule");
      assert.equal(denseUsesGemm(plan, 8, 9, 3, "linear"), rule);
      // FMNIST_DENSE forces either; a bad value is a clear error.
      withFlags({ FMNIST_DENSE: "matmul" }, () => {
        assert.equal(denseUsesGemm(plan, 8, 9, 3, "linear"), false);
      });
      withFlags({ FMNIST_DENSE: "gemm" }, () => {
        assert.equal(denseUsesGemm(plan, 8, 20, 6, "relu"), true);
      });
      withFlags({ FMNIST_DENSE: "fast" }, () => {
        assert.throws(
          () => denseUsesGemm(plan, 8, 20, 6, "relu"),
          /FMNIST_DENSE must be one of auto\|gemm\|matmul, got "fast"/,
        );
      });
      // Tuning off times nothing; a plan without the table follows the rule again.
      assert.deepEqual(await tuneDenseProblems(problems, { ...opts, setting: "off" }), []);
      assert.equal(denseUsesGemm(tilePlan(kind), 8, 20, 6, "relu"), rule);
    });
  },
});
