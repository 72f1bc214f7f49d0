// Conv + bias + ReLU + 2x2 max-pool as one op (src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts):
//   1. the backward pass MaxPool2ReluBiasGrad on webgpu (NaN-poisoned outputs) and cpu vs the
//      composed references (maxPool2GradRef, then the ReLU mask and the bias sum), over random
//      shapes (odd and even H / W, C % 4 == 0 or not, quantised y so that windows tie and whole
//      windows are 0) and baseline's two stages at batch 128: dz exact (a copy of dy or 0),
//      dbias within 1e-6 * windows + 1e-5 relative (float32 sums of up to `windows` terms in
//      [-1, 1], see bias_act_grad_test.ts);
//   2. the whole op, output and gradients (x, filter, bias through tf.grads of sum(p * dp)), vs
//      maxPool2Ref(convBiasReluRef) and the composed gradient references on webgpu, and vs
//      tfjs's maxPool(fused conv2d) on cpu; tolerances as conv_bias_relu_test.ts (atol 1e-6 x
//      the terms behind one element, rtol 1e-4); windows whose top two pre-activations, or whose
//      maximum and 0, lie within 1e-3 get dp = 0 (float32 and float64 may route them apart);
//   3. past the window cap the gradient runs the separate kernels (same results); one dispatch
//      for the backward pass; bad inputs name the tensor.

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import {
  convBiasReluPool2,
  MAX_POOL2_RELU_BIAS_GRAD,
  POOL_GRAD_MAX_WINDOWS,
} from "./conv_bias_relu_pool2.ts";
import { convBiasReluGradRef, convBiasReluRef } from "../conv_bias_relu/conv_bias_relu_ref.ts";
import { maxPool2GradRef, maxPool2Ref, maxPool2Shape } from "../max_pool2/max_pool2_ref.ts";
import { biasActGradRef } from "../bias_act_grad/bias_act_grad_ref.ts";
import { conv2dRef } from "../conv_bn_relu/conv_bn_relu_ref.ts";
import {
  caseGeometry,
  type ConvBiasFn,
  type ConvBiasGrads,
  convBiasGrads,
  type ConvBiasInputs,
  convBiasInputs,
  convBiasTolerances,
} from "../conv_bias_relu/conv_bias_relu_fixtures.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import {
  checkOp,
  type ConvCase,
  convCaseArb,
  describeCase,
  GPU_TEST,
  gpuTest,
  runs,
  seededUniform,
  withGpu,
} from "../../../test/helpers/op_check.ts";
import { Rng } from "../../random.ts";

const MARGIN = 1e-3;
const EXACT = { atol: 0, rtol: 0 };

// ---- 1. the backward pass alone ----

interface GradCase {
  shape: [number, number, number, number];
  seed: number;
}

const gradCaseArb: fc.Arbitrary<GradCase> = fc.record({
  shape: fc.tuple(
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 2, max: 11 }),
    fc.integer({ min: 2, max: 11 }),
    fc.oneof(fc.integer({ min: 1, max: 21 }), fc.constantFrom(4, 8, 16, 32)),
  ),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

/** y: ReLU outputs on a coarse grid (ties and all-zero windows are common); dy in [-1, 1). */
function gradData({ shape, seed }: GradCase) {
  const rng = new Rng(seed);
  const y = Float32Array.from(
    { length: shape.reduce((a, b) => a * b, 1) },
    () => Math.max(0, Math.floor(rng.next() * 6) - 2) / 4,
  );
  const dy = seededUniform(maxPool2Shape(shape).reduce((a, b) => a * b, 1), seed + 1);
  return { y, dy };
}

function gradRef(c: GradCase, y: Float32Array, dy: Float32Array) {
  return biasActGradRef(maxPool2GradRef(dy, y, c.shape), y, c.shape[3], "relu");
}

async function checkGrad(c: GradCase, label: string) {
  const { y, dy } = gradData(c);
  const yT = tf.tensor(y, c.shape), dyT = tf.tensor(dy, maxPool2Shape(c.shape));
  const [dz, dbias] = tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, {
    dy: dyT,
    y: yT,
  }) as tf.Tensor[];
  const actual = { dz: await dz.data(), dbias: await dbias.data() };
  tf.dispose([yT, dyT, dz, dbias]);
  const windows = dy.length / c.shape[3];
  checkOp(actual, { ...gradRef(c, y, dy) }, {
    dz: EXACT,
    dbias: { atol: 1e-6 * windows, rtol: 1e-5 },
  }, `${label}[${c.shape}] seed ${c.seed}`);
}

const BASELINE_STAGES: GradCase[] = [
  { shape: [128, 26, 26, 32], seed: 51 },
  { shape: [128, 11, 11, 64], seed: 52 },
];

Deno.test({
  name: "MaxPool2ReluBiasGrad: webgpu and cpu match the composed references",
  ...GPU_TEST,
  fn: async () => {
    await withGpu(async () => {
      for (const c of BASELINE_STAGES) await checkGrad(c, "webgpu ");
      await fc.assert(fc.asyncProperty(gradCaseArb, (c) => checkGrad(c, "webgpu ")), {
        seed: 1521,
        numRuns: runs(40),
      });
      const { y, dy } = gradData(BASELINE_STAGES[1]);
      const yT = tf.tensor(y, BASELINE_STAGES[1].shape);
      const dyT = tf.tensor(dy, maxPool2Shape(BASELINE_STAGES[1].shape));
      const { count, result } = countDispatches(() =>
        tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, { dy: dyT, y: yT }) as tf.Tensor[]
      );
      assert.equal(count?.total, 1, JSON.stringify(count));
      tf.dispose([yT, dyT, ...(result as tf.Tensor[])]);
    });
    await initTf("cpu");
    await fc.assert(fc.asyncProperty(gradCaseArb, (c) => checkGrad(c, "cpu ")), {
      seed: 1522,
      numRuns: runs(15),
    });
  },
});

// ---- 2. the whole op ----

interface Data extends ConvBiasInputs {
  dp: Float32Array;
}

/** Conv cases whose output is at least 2x2 (the pool needs a window). */
const opCaseArb = convCaseArb().filter((c) => {
  const g = caseGeometry(c);
  return g.outH >= 2 && g.outW >= 2;
});

function opData(c: ConvCase): Data {
  const inputs = convBiasInputs(c);
  const { g, x, filter, bias } = inputs;
  const yShape = [g.batch, g.outH, g.outW, g.outC];
  const z = conv2dRef(x, filter, g).map((v, i) => v + bias[i % g.outC]);
  const dp = seededUniform(maxPool2Shape(yShape).reduce((a, b) => a * b, 1), c.seed + 3);
  // Zero dp where float32 and float64 could route a window differently.
  const [, ho, wo, ch] = maxPool2Shape(yShape);
  let out = 0;
  for (let b = 0; b < g.batch; b++) {
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        for (let k = 0; k < ch; k++, out++) {
          const at = (di: number, dj: number) =>
            z[((b * g.outH + 2 * i + di) * g.outW + 2 * j + dj) * ch + k];
          const v = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)].sort((p, q) => q - p);
          if (v[0] - v[1] < MARGIN || Math.abs(v[0]) < MARGIN) dp[out] = 0;
        }
      }
    }
  }
  return { ...inputs, dp };
}

type Grads = ConvBiasGrads<"p">;

const runOp = (d: Data, f: ConvBiasFn): Promise<Grads> =>
  convBiasGrads(d, "p", f, d.dp, maxPool2Shape([d.g.batch, d.g.outH, d.g.outW, d.g.outC]));

const ours = (d: Data) =>
  runOp(d, (x, w, b) => convBiasReluPool2(x, w, b, { strides: d.c.strides, pad: d.c.pad }));

function reference(d: Data): Grads {
  const { g } = d;
  const yShape = [g.batch, g.outH, g.outW, g.outC];
  const y = convBiasReluRef(d.x, d.filter, d.bias, g);
  const dy = maxPool2GradRef(d.dp, y, yShape);
  return { p: maxPool2Ref(y, yShape), ...convBiasReluGradRef(dy, y, d.x, d.filter, d.g) };
}

const tolerances = (d: Data, scale = 1) => convBiasTolerances(d.g, "p", scale);

Deno.test({
  name: "convBiasReluPool2: output and gradients match the references (webgpu) and tfjs (cpu)",
  ...GPU_TEST,
  fn: async () => {
    await withGpu(() =>
      fc.assert(
        fc.asyncProperty(opCaseArb, async (c) => {
          const d = opData(c);
          checkOp({ ...(await ours(d)) }, { ...reference(d) }, tolerances(d), describeCase(c));
        }),
        { seed: 1523, numRuns: runs(20) },
      )
    );
    await initTf("cpu");
    await fc.assert(
      fc.asyncProperty(opCaseArb, async (c) => {
        const d = opData(c);
        const stock = await runOp(d, (x, filter, bias) =>
          tf.maxPool(
            tf.fused.conv2d({
              x,
              filter,
              bias,
              strides: c.strides,
              pad: c.pad,
              activation: "relu",
            }),
            2,
            2,
            "valid",
          ));
        // tfjs rounds in float32 too: 10x the tolerances.
        checkOp({ ...(await ours(d)) }, { ...stock }, tolerances(d, 10), "cpu " + describeCase(c));
      }),
      { seed: 1524, numRuns: runs(10) },
    );
  },
});

// ---- 3. the cap, bad inputs ----

gpuTest(
  "convBiasReluPool2: past the window cap the separate kernels run (same results); errors",
  async () => {
    // 1 x 1962 x 1962 x 1 valid 3x3 -> 1960 x 1960: 980^2 = 960,400 windows, just past the cap.
    const c: ConvCase = {
      n: 1,
      h: 1962,
      w: 1962,
      cin: 1,
      cout: 1,
      kh: 3,
      kw: 3,
      strides: [1, 1],
      pad: "valid",
      seed: 61,
    };
    const d = opData(c);
    assert.ok(d.dp.length > POOL_GRAD_MAX_WINDOWS);
    checkOp({ ...(await ours(d)) }, { ...reference(d) }, tolerances(d), "past the cap ");
    const x = tf.zeros([1, 3, 3, 2]) as tf.Tensor4D;
    const w = tf.zeros([3, 3, 2, 4]) as tf.Tensor4D;
    const b = tf.zeros([4]) as tf.Tensor1D;
    assert.throws(
      () => convBiasReluPool2(x, w, b, { strides: 1, pad: "valid" }),
      /conv output must be >= 2x2, got 1x1/,
    );
    assert.throws(
      () => convBiasReluPool2(x, w, tf.zeros([3]) as tf.Tensor1D, { strides: 1, pad: "same" }),
      /bias must have shape \[4\]/,
    );
    assert.throws(
      () =>
        tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, {
          dy: tf.zeros([1, 2, 2, 4]),
          y: tf.zeros([1, 6, 6, 4]),
        }),
      /dy must have shape \[1,3,3,4\] \(y pooled\), got \[1,2,2,4\]/,
    );
    tf.dispose([x, w, b]);
  },
);
