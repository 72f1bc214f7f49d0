// Forward of the fused conv + batch-norm + ReLU op (ConvBnReluTrain, ConvBnReluInfer):
//   1. hand-checkable cases on webgpu and cpu;
//   2. the generated WGSL kernels under every tile configuration (conv/tiling.ts: software and
//      discrete candidates, each pinned on the fixed edge cases, plus random (case, config)
//      pairs), and the naive oracle kernels, vs the plain-loop CPU reference (fast-check,
//      seeded): y, z, stats, mean, variance, inference y, the running statistics (1 ulp);
//   3. the CPU reference vs the stock tfjs chain (conv2d, moments, batchNorm, relu) on the cpu
//      backend, and its running-statistics update vs tfjs's mul/mul/add (exact);
//   4. input validation, one pipeline for two batch sizes, no tensor leaks.
// GPU runs go through withGpu (test/helpers/op_check.ts): poisoned outputs, validation error
// scope, flags restored. FMNIST_SOAK=1 runs many more random cases.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import {
  convBnRelu,
  convBnReluInfer,
  convBnReluTrain,
  convBnReluTrainWithMovingStats,
  foldBatchNorm,
} from "./conv_bn_relu.ts";
import { convBnReluInferStock, convBnReluTrainStock } from "./conv_bn_relu_stock.ts";
import { convBnReluTrainRef } from "./conv_bn_relu_ref.ts";
import { defaultConfig } from "../conv/tiling.ts";
import { convGeometry } from "../conv/geometry.ts";
import { type Tolerance } from "../../../test/helpers/compare.ts";
import {
  checkOp,
  type ConvCase,
  convCaseArb,
  cpuPropertyTest,
  describeCase,
  fixedCase,
  GPU_TEST,
  gpuPropertyTest,
  gpuTest,
  runs,
  TILE_EDGE_CASES,
  tileConfigPropertyTest,
  withGpu,
} from "../../../test/helpers/op_check.ts";
import {
  BN_GRID_CASES,
  caseData,
  checkGpuAgainstRef,
  EPS,
  inferOn,
  MOMENTUM,
  runOurs,
  runTrainKernel,
  STATS_TOL,
  tensors,
  Y_TOL,
} from "../../../test/helpers/conv_bn_relu_checks.ts";

// The stock chain runs in float32 too (its moments and batchNorm formulas differ from ours).
const STOCK_TOL: Tolerance = { atol: 2e-3, rtol: 2e-3 };
const onGpu = withGpu;
type FwdCase = ConvCase;

// ---- random shapes ----------------------------------------------------------------------------

const caseArb = convCaseArb();

// ---- 1. hand-checkable cases ------------------------------------------------------------------

// x = 1..9 in a 3x3 image, 2x2 filter [[1, 2], [3, 4]], valid: z = [37, 47, 67, 77]
// (37 = 1*1 + 2*2 + 4*3 + 5*4). mean 57, variance (400 + 100 + 100 + 400) / 4 = 250, so with
// gamma 1, beta 0: y = relu((z - 57) / sqrt(250 + eps)) = [0, 0, 0.632, 1.265].
const HAND = {
  x: [1, 2, 3, 4, 5, 6, 7, 8, 9],
  filter: [1, 2, 3, 4],
  z: [37, 47, 67, 77],
  y: [0, 0, 10 / Math.sqrt(250 + EPS), 20 / Math.sqrt(250 + EPS)],
};

async function checkHandCase() {
  const x = tf.tensor4d(HAND.x, [1, 3, 3, 1]);
  const filter = tf.tensor4d(HAND.filter, [2, 2, 1, 1]);
  const gamma = tf.tensor1d([1]);
  const beta = tf.tensor1d([0]);
  const attrs = { strides: 1, pad: "valid" as const, epsilon: EPS };
  const r = convBnReluTrain(x, filter, gamma, beta, attrs);
  assert.deepEqual(r.y.shape, [1, 2, 2, 1]);
  checkOp(
    { y: await r.y.data(), mean: await r.mean.data(), variance: await r.variance.data() },
    { y: HAND.y, mean: [57], variance: [250] },
    {
      y: { atol: 1e-5, rtol: 1e-5 },
      mean: { atol: 1e-5, rtol: 1e-6 },
      variance: { atol: 1e-4, rtol: 1e-6 },
    },
    "hand",
  );
  // Inference with running mean 0 and variance 1 - eps: scale = 2, shift = -100:
  // y = relu(2 z - 100) = [0, 0, 34, 54].
  const yi = convBnReluInfer(
    x,
    filter,
    tf.tensor1d([2]),
    tf.tensor1d([-100]),
    tf.tensor1d([0]),
    tf.tensor1d([1 - EPS]),
    attrs,
  );
  checkOp(
    { y: await yi.data() },
    { y: [0, 0, 34, 54] },
    { y: { atol: 1e-4, rtol: 1e-6 } },
    "hand inference",
  );
  tf.dispose([x, filter, gamma, beta, r.y, r.mean, r.variance, yi]);
}

Deno.test({
  name: "convBnRelu forward: hand-checkable case on webgpu",
  ...GPU_TEST,
  fn: () => onGpu(checkHandCase),
});

Deno.test({
  name: "convBnRelu forward: hand-checkable case on cpu",
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    await checkHandCase();
  },
});

// ---- 2. GPU vs CPU reference ------------------------------------------------------------------

tileConfigPropertyTest(
  "convBnRelu forward: every forward tile config matches the CPU reference",
  ["fwd"],
  TILE_EDGE_CASES,
  (c, config) => checkGpuAgainstRef(caseData(c), `${config.id} ${describeCase(c)}`),
  { seed: 20261125, quickRuns: 20 },
);

gpuPropertyTest(
  "convBnRelu forward: naive oracle kernels (FMNIST_NAIVE_KERNELS) match the CPU reference",
  caseArb,
  (c) => checkGpuAgainstRef(caseData(c)),
  { seed: 7, numRuns: runs(10), naive: true },
);

gpuTest(
  "convBnRelu forward: tile edges (rows not a multiple of 8, Cout % 8 == 4), first layer",
  async () => {
    for (
      const c of [
        { n: 3, h: 7, w: 5, cin: 8, cout: 12, kh: 3, kw: 3 },
        { n: 2, h: 14, w: 14, cin: 16, cout: 32, kh: 3, kw: 3 },
        { n: 1, h: 9, w: 11, cin: 4, cout: 4, kh: 5, kw: 3 },
        { n: 2, h: 12, w: 12, cin: 1, cout: 32, kh: 3, kw: 3 }, // first layer: scalar x
      ]
    ) {
      await checkGpuAgainstRef(caseData({ ...c, strides: [1, 1], pad: "same", seed: 99 }));
      await checkGpuAgainstRef(caseData({ ...c, strides: [2, 2], pad: "valid", seed: 98 }));
    }
  },
);

gpuTest(
  "convBnRelu forward: batch statistics stay accurate when |mean| >> std (many chunks)",
  async () => {
    // 1x1 conv of x ~ 20 + U(-1, 1) with positive weights: z has mean ~60 and std ~1, over
    // 4*12*12 = 576 rows = 9 chunks of bn_stats (8 row lanes each). sum/sumsq in float32 would
    // lose ~2e-4 of the variance here (eps * mean^2); the shifted sums + Chan merges must not.
    const d = caseData(fixedCase({ x: [4, 12, 12, 4], k: 1, cout: 8, seed: 5 }));
    d.x = d.x.map((v) => 20 + v);
    d.filter = d.filter.map((v) => 0.75 + 0.25 * v);
    const ref = convBnReluTrainRef(d.x, d.filter, d.gamma, d.beta, d.g, EPS);
    assert.ok(ref.stats[0] > 40, `mean ${ref.stats[0]}`);
    const k = await runTrainKernel(d);
    checkOp(k, { ...ref }, { stats: STATS_TOL, y: Y_TOL }, "with a large mean");
  },
);

gpuTest(
  "convBnRelu forward: chunked batch-norm grid edges (one chunk, partial chunks and blocks)",
  async () => {
    // Every apply workgroup merges bn_stats's partials for its channels; chunk 0 writes the
    // statistics and the running statistics. Same checks and tolerances as above.
    for (const c of BN_GRID_CASES) await checkGpuAgainstRef(caseData(c), `grid ${describeCase(c)}`);
  },
);

// ---- 3. CPU reference vs the stock chain --------------------------------------------------------

cpuPropertyTest(
  "convBnRelu forward: CPU reference matches the stock tfjs chain on the cpu backend",
  caseArb,
  async (c) => {
    const d = caseData(c);
    const label = describeCase(c);
    const ours = await runOurs(d); // the cpu kernels are the reference
    const t = tensors(d);
    const attrs = { strides: c.strides, pad: c.pad, epsilon: EPS };
    const s = convBnReluTrainStock(t.x, t.filter, t.gamma, t.beta, attrs);
    const si = inferOn(t, attrs, convBnReluInferStock);
    checkOp(
      { ...ours },
      {
        y: await s.y.data(),
        mean: await s.mean.data(),
        variance: await s.variance.data(),
        yInfer: await si.data(),
      },
      { y: STOCK_TOL, mean: STOCK_TOL, variance: STOCK_TOL, yInfer: STOCK_TOL },
      label,
    );
    // The running statistics (the layer's update): exactly tfjs's mul/mul/add on the
    // kernel's own batch statistics (float32, same roundings).
    const k = await runTrainKernel(d);
    const c3 = d.g.outC;
    const stock = (moving: tf.Tensor, batch: Float32Array) =>
      tf.tidy(() => tf.add(tf.mul(moving, MOMENTUM), tf.mul(tf.tensor1d(batch), 1 - MOMENTUM)));
    const wantMean = stock(t.movingMean, k.stats.subarray(0, c3));
    const wantVariance = stock(t.movingVariance, k.stats.subarray(c3, 2 * c3));
    checkOp(
      { newMean: k.newMean, newVariance: k.newVariance },
      { newMean: await wantMean.data(), newVariance: await wantVariance.data() },
      { newMean: { atol: 0, rtol: 0 }, newVariance: { atol: 0, rtol: 0 } },
      `${label}: running statistics vs tfjs mul/mul/add`,
    );
    tf.dispose([s.y, s.mean, s.variance, si, wantMean, wantVariance, ...Object.values(t)]);
  },
  { seed: 4242, numRuns: runs(25) },
);

// ---- 4. validation, pipelines, leaks ------------------------------------------------------------

Deno.test({
  name: "convBnRelu forward: bad inputs throw errors naming the tensor and shapes",
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    const x = tf.zeros([2, 5, 5, 3]) as tf.Tensor4D;
    const filter = tf.zeros([3, 3, 3, 4]) as tf.Tensor4D;
    const gamma = tf.ones([4]) as tf.Tensor1D;
    const beta = tf.zeros([4]) as tf.Tensor1D;
    const attrs = { strides: 1, pad: "same" as const };
    const bad = [
      {
        f: () => convBnReluTrain(x, tf.zeros([3, 3, 2, 4]) as tf.Tensor4D, gamma, beta, attrs),
        msg: /filter input channels 2 != x channels 3/,
      },
      {
        f: () =>
          convBnReluTrain(
            tf.zeros([5, 5, 3]) as tf.Tensor as tf.Tensor4D,
            filter,
            gamma,
            beta,
            attrs,
          ),
        msg: /x must be rank 4 NHWC, got \[5,5,3\]/,
      },
      {
        f: () => convBnReluTrain(x, filter, tf.ones([5]) as tf.Tensor1D, beta, attrs),
        msg: /gamma must have shape \[4\].*got \[5\]/,
      },
      {
        f: () => convBnReluTrain(x, filter, gamma, beta, { strides: 3, pad: "same" }),
        msg: /strides must be 1 or 2/,
      },
      {
        f: () =>
          convBnReluTrainWithMovingStats(x, filter, gamma, beta, attrs, {
            mean: beta,
            variance: gamma,
            momentum: 1.5,
          }),
        msg: /momentum must be in \[0, 1\], got 1.5/,
      },
      {
        f: () =>
          convBnReluTrainWithMovingStats(x, filter, gamma, beta, attrs, {
            mean: tf.zeros([3]) as tf.Tensor1D,
            variance: gamma,
            momentum: 0.99,
          }),
        msg: /movingMean must have shape \[4\].*got \[3\]/,
      },
      {
        f: () => convBnReluInfer(x, filter, gamma, beta, gamma, tf.ones([2]) as tf.Tensor1D, attrs),
        msg: /movingVariance must have shape \[4\]/,
      },
      {
        f: () => convBnRelu(x, filter, gamma, beta, { ...attrs, training: false }),
        msg: /inference mode needs movingMean and movingVariance/,
      },
      {
        f: () =>
          convBnReluTrain(tf.zeros([1, 2, 2, 3]) as tf.Tensor4D, filter, gamma, beta, {
            strides: 1,
            pad: "valid",
          }),
        msg: /larger than the 2x2 input/,
      },
    ];
    for (const { f, msg } of bad) assert.throws(f, msg);
    tf.dispose([x, filter, gamma, beta]);
  },
});

gpuTest("convBnRelu forward: two batch sizes share one compiled pipeline per kernel", async () => {
  const backend = tf.backend() as unknown as { pipelineCache: Record<string, unknown> };
  const ours = () =>
    Object.keys(backend.pipelineCache).filter((k) => /^(convGemm|bnStats|bnReluApply)/.test(k));
  const base = { h: 6, w: 6, cin: 8, cout: 8, kh: 3, kw: 3, pad: "same" as const };
  const run = (n: number) => runOurs(caseData({ ...base, n, strides: [1, 1], seed: n }));
  // tfjs's pipeline key also depends on what is not the batch size itself: it flags each input
  // whose size equals the output's (at batch 2 the filter, 3*3*8*8, and the output, 2*6*6*8, are
  // both 576 floats) and whether the dispatch is one row of workgroups (the batch-norm grid has one
  // chunk up to batch 3 here, several from 4 on). Batches 5 and 7 differ in neither.
  await run(5);
  const keys = ours();
  await run(7);
  assert.deepEqual(ours(), keys, "a new batch size compiled new pipelines");
  // The default for this shape (6 pixels wide: too short for a row window, so a plain tile).
  const g = convGeometry([5, 6, 6, 8], [3, 3, 8, 8], 1, "same");
  const fwd = `convGemm_${defaultConfig("fwd", "software", g).id}_va4vb4`;
  assert.ok(
    keys.some((k) => k.startsWith(fwd) && /_store(_|$)/.test(k)),
    `${fwd}..._store not in ${keys.join(" ")}`,
  );
});

gpuTest("convBnRelu forward: no tensor leaks (training, inference, foldBatchNorm)", async () => {
  const d = caseData(fixedCase({ x: [2, 5, 5, 4], k: 3, cout: 8, seed: 3 }));
  const t = tensors(d);
  const step = async () => {
    const r = convBnReluTrain(t.x, t.filter, t.gamma, t.beta, { strides: 1, pad: "same" });
    const yi = inferOn(t, { strides: 1, pad: "same" });
    const f = foldBatchNorm(t.gamma, t.beta, t.movingMean, t.movingVariance);
    await yi.data();
    tf.dispose([r.y, r.mean, r.variance, yi, f.scale, f.shift]);
  };
  await step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) await step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose(Object.values(t));
});
