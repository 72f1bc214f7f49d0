// Conv + bias + ReLU (src/ops/conv_bias_relu/conv_bias_relu.ts), forward and gradients (x, filter, bias through
// tf.grads of sum(y * dy)):
//   1. a hand-checkable case on webgpu and cpu;
//   2. the generated kernels under every tile configuration of every view (each pinned on a
//      stride-2 `valid` case, plus random (case, config) pairs), and the naive oracle kernels,
//      vs the plain-loop CPU reference (conv_bias_relu_ref.ts), NaN-poisoned outputs;
//   3. the CPU reference vs tfjs's fused conv2d (bias, relu) and its gradients on the cpu backend;
//   4. input validation.
// Tolerances: |a - e| <= atol + rtol*|e| with atol = 1e-6 * (number of terms behind one element)
// (inputs are U(-1, 1), so each term is <= 1 and float32 rounding of a sum of T such terms stays
// well below T * 2^-24 * max partial sum) and rtol 1e-4. Elements whose pre-activation lies within
// 1e-3 of 0 get dy = 0: float32 and float64 may disagree on their ReLU mask.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { convBiasRelu } from "./conv_bias_relu.ts";
import { convBiasReluGradRef, convBiasReluRef } from "./conv_bias_relu_ref.ts";
import { convGeometry } from "../conv/geometry.ts";
import { conv2dRef } from "../conv_bn_relu/conv_bn_relu_ref.ts";
import {
  type ConvBiasFn,
  type ConvBiasGrads,
  convBiasGrads,
  type ConvBiasInputs,
  convBiasInputs,
  convBiasTolerances,
} from "./conv_bias_relu_fixtures.ts";
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
  seededUniform,
  tileConfigPropertyTest,
  withGpu,
} from "../../../test/helpers/op_check.ts";

interface Data extends ConvBiasInputs {
  dy: Float32Array;
}

const RELU_MARGIN = 1e-3;

function caseData(c: ConvCase): Data {
  const inputs = convBiasInputs(c);
  const { bias } = inputs;
  const z = conv2dRef(inputs.x, inputs.filter, inputs.g);
  const dy = seededUniform(z.length, c.seed + 3);
  for (let i = 0; i < z.length; i++) {
    if (Math.abs(z[i] + bias[i % c.cout]) < RELU_MARGIN) dy[i] = 0;
  }
  return { ...inputs, dy };
}

const tolerances = (d: Data, scale = 1) => convBiasTolerances(d.g, "y", scale);

type Grads = ConvBiasGrads<"y">;

/** y and tf.grads of sum(f(x, filter, bias) * dy) on the current backend. */
const runOp = (d: Data, f: ConvBiasFn): Promise<Grads> =>
  convBiasGrads(d, "y", f, d.dy, [d.g.batch, d.g.outH, d.g.outW, d.g.outC]);

const ours = (d: Data) =>
  runOp(d, (x, w, b) => convBiasRelu(x, w, b, { strides: d.c.strides, pad: d.c.pad }));

function reference(d: Data): Grads {
  const y = convBiasReluRef(d.x, d.filter, d.bias, d.g);
  return { y, ...convBiasReluGradRef(d.dy, y, d.x, d.filter, d.g) };
}

Deno.test({
  name: "convBiasRelu: hand-checkable case on webgpu and cpu",
  ...GPU_TEST,
  fn: async () => {
    // x = 1..9 (3x3), filter [[1, 2], [3, 4]], valid: z = [37, 47, 67, 77]; bias -50:
    // y = [0, 0, 17, 27]. With dy = 1 only outputs (1,0) and (1,1) pass the ReLU: dbias = 2,
    // dfilter = the sum of their two input windows = [4+5, 5+6, 7+8, 8+9].
    const c: ConvCase = fixedCase({ x: [1, 3, 3, 1], k: 2, cout: 1, seed: 1, pad: "valid" });
    const d: Data = {
      c,
      g: convGeometry([1, 3, 3, 1], [2, 2, 1, 1], 1, "valid"),
      x: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      filter: Float32Array.from([1, 2, 3, 4]),
      bias: Float32Array.from([-50]),
      dy: Float32Array.from([1, 1, 1, 1]),
    };
    const expected = {
      y: [0, 0, 17, 27],
      dfilter: [9, 11, 15, 17],
      dbias: [2],
      // dx: each active output sends the filter back onto its window.
      dx: [0, 0, 0, 1, 3, 2, 3, 7, 4],
    };
    const tol = { atol: 1e-5, rtol: 1e-6 };
    const all = { y: tol, dx: tol, dfilter: tol, dbias: tol };
    checkOp({ ...(await withGpu(() => ours(d))) }, expected, all, "webgpu hand");
    await initTf("cpu");
    checkOp({ ...(await ours(d)) }, expected, all, "cpu hand");
  },
});

/** Our op on the current backend vs the CPU reference (outputs and gradients). */
async function checkOurs(c: ConvCase, label: string): Promise<void> {
  const d = caseData(c);
  checkOp({ ...(await ours(d)) }, { ...reference(d) }, tolerances(d), label + describeCase(c));
}

tileConfigPropertyTest(
  "convBiasRelu: every tile config matches the CPU reference (outputs and gradients)",
  ["fwd", "bwdData", "bwdFilter"],
  [{ n: 2, h: 9, w: 8, cin: 4, cout: 8, kh: 3, kw: 3, strides: [2, 2], pad: "valid", seed: 5 }],
  (c, config) => checkOurs(c, `${config.id} `),
  { seed: 1107, quickRuns: 10 },
);

gpuPropertyTest(
  "convBiasRelu: naive oracle kernels match the CPU reference",
  convCaseArb(),
  (c) => checkOurs(c, ""),
  { seed: 1108, numRuns: runs(6), naive: true },
);

cpuPropertyTest(
  "convBiasRelu: CPU reference matches tfjs's fused conv2d and its gradients (cpu)",
  convCaseArb(),
  async (c) => {
    const d = caseData(c);
    const stock = await runOp(
      d,
      (x, w, b) =>
        tf.fused.conv2d({
          x,
          filter: w,
          bias: b,
          strides: c.strides,
          pad: c.pad,
          activation: "relu",
        }),
    );
    // The stock op rounds in float32 too: 10x the kernel tolerances.
    checkOp(
      { ...reference(d) },
      { ...stock },
      tolerances(d, 10),
      `ref vs stock ${describeCase(c)}`,
    );
  },
  { seed: 1109, numRuns: runs(15) },
);

Deno.test("convBiasRelu: bad inputs throw errors naming the tensor", async () => {
  await initTf("cpu");
  const x = tf.zeros([1, 5, 5, 2]) as tf.Tensor4D;
  const w = tf.zeros([3, 3, 2, 4]) as tf.Tensor4D;
  assert.throws(
    () => convBiasRelu(x, w, tf.zeros([3]) as tf.Tensor1D, { strides: 1, pad: "same" }),
    /bias must have shape \[4\].*got \[3\]/,
  );
  assert.throws(
    () => convBiasRelu(x, w, tf.zeros([4]) as tf.Tensor1D, { strides: 3, pad: "same" }),
    /strides must be 1 or 2/,
  );
  assert.throws(
    () =>
      convBiasRelu(x, tf.zeros([3, 3, 1, 4]) as tf.Tensor4D, tf.zeros([4]) as tf.Tensor1D, {
        strides: 1,
        pad: "valid",
      }),
    /filter input channels 1 != x channels 2/,
  );
  tf.dispose([x, w]);
});

gpuTest("convBiasRelu: no tensor leaks across forward + gradient steps", async () => {
  const d = caseData(fixedCase({ x: [2, 6, 6, 4], k: 3, cout: 8, seed: 3 }));
  await ours(d);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await ours(d);
  assert.equal(tf.memory().numTensors, before);
});
