// The 2x2 / stride-2 max-pool op (src/ops/max_pool2/max_pool2.ts), forward and gradient (tf.grad of
// sum(maxPool2(x) * dy)):
//   1. a hand-checkable case with ties and an odd H / W, on webgpu and cpu;
//   2. random shapes (odd H / W, C not a multiple of 4 and vec4 widths), inputs quantised to a
//      few levels so that windows tie, dy distinct per window: ours on webgpu (NaN-poisoned
//      outputs) and on cpu vs tf.maxPool and its gradient on the CPU backend;
//   3. NaN / -Infinity windows: the cpu kernel vs tfjs's CPU maxPool (the GPU kernels assume
//      finite values, as WGSL lets the adapter do);
//   4. the model's pool shapes at batch 128 and a grid past 65,535 workgroups on webgpu vs the
//      reference;
//   5. the model layer: `ops: "fused"` runs this op, `ops: "stock"` tf.maxPool;
//   6. input validation.
// Tolerance: exact (0). The forward copies one input per window and the gradient copies one dy
// per window (windows do not overlap), so any difference is a wrong element or a wrong tie.

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { MAX_POOL2, MAX_POOL2_GRAD, maxPool2, maxPool2Dropout } from "./max_pool2.ts";
import { dropout } from "../dropout/dropout.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import { maxPool2 as maxPool2Layer } from "../../model/layers.ts";
import { maxPool2GradRef, maxPool2Ref, maxPool2Shape } from "./max_pool2_ref.ts";
import { checkOp, GPU_TEST, gpuTest, runs, withGpu } from "../../../test/helpers/op_check.ts";
import { Rng } from "../../random.ts";

type Shape = [number, number, number, number];
const EXACT = { atol: 0, rtol: 0 };
const BOTH = { y: EXACT, dx: EXACT };

interface Case {
  shape: Shape;
  x: Float32Array;
  dy: Float32Array;
  label: string;
}

/** dy = 1, 2, 3, ...: every window's gradient is distinct, so a misrouted one shows. */
function distinctDy(shape: Shape): Float32Array {
  const size = maxPool2Shape(shape).reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: size }, (_, i) => (i % 4093) + 1);
}

/** x from `levels` values in [-1, 1]: few levels, many tied windows. */
function quantised(shape: Shape, levels: number, seed: number): Case {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from(
    { length: size },
    () => levels === 1 ? 0.5 : -1 + 2 * Math.floor(rng.next() * levels) / (levels - 1),
  );
  return { shape, x, dy: distinctDy(shape), label: `x=[${shape}] levels=${levels} seed=${seed}` };
}

/** y and dx of sum(pool(x) * dy) on the current backend. */
async function run(c: Case, pool: (x: tf.Tensor4D) => tf.Tensor4D) {
  const x = tf.tensor4d(c.x, c.shape);
  const dy = tf.tensor4d(c.dy, maxPool2Shape(c.shape));
  const y = pool(x);
  const dx = tf.grad((a) => tf.sum(tf.mul(pool(a as tf.Tensor4D), dy)))(x);
  const [yv, dxv] = await Promise.all([y.data(), dx.data()]);
  tf.dispose([x, dy, y, dx]);
  return { y: yv, dx: dxv };
}

const ours = (c: Case) => run(c, maxPool2);
const tfjs = (c: Case) => run(c, (x) => tf.maxPool(x, 2, 2, "valid"));
const reference = (c: Case) => ({
  y: maxPool2Ref(c.x, c.shape),
  dx: maxPool2GradRef(c.dy, c.x, c.shape),
});

/** `f` on the CPU backend, from inside withGpu (the webgpu backend and its flags stay). */
async function onCpu<T>(f: () => Promise<T>): Promise<T> {
  await tf.setBackend("cpu");
  try {
    return await f();
  } finally {
    await tf.setBackend("webgpu");
  }
}

Deno.test({
  name: "maxPool2: hand-checkable case with ties and odd H, W on webgpu and cpu",
  ...GPU_TEST,
  fn: async () => {
    // x (3 x 5, one channel; the last row and column are dropped):
    //   1 3 | 3 0 | 9        windows: [1 3; 2 3] max 3 at top-right (first of the tie 3, 3)
    //   2 3 | 3 3 | 9                 [3 0; 3 3] max 3 at top-left (first of three)
    //   9 9   9 9   9
    const c: Case = {
      shape: [1, 3, 5, 1],
      x: Float32Array.from([1, 3, 3, 0, 9, 2, 3, 3, 3, 9, 9, 9, 9, 9, 9]),
      dy: Float32Array.from([10, 20]),
      label: "hand",
    };
    const expected = {
      y: [3, 3],
      dx: [0, 10, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    checkOp({ ...(await withGpu(() => ours(c))) }, expected, BOTH, "webgpu hand");
    await initTf("cpu");
    checkOp({ ...(await ours(c)) }, expected, BOTH, "cpu hand");
    checkOp({ ...(await tfjs(c)) }, expected, BOTH, "tfjs cpu hand");
  },
});

const caseArb: fc.Arbitrary<Case> = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 2, max: 13 }),
  w: fc.integer({ min: 2, max: 13 }),
  c: fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 12, 17, 32),
  levels: fc.constantFrom(1, 2, 3, 5, 256),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
}).map((r) => quantised([r.n, r.h, r.w, r.c], r.levels, r.seed));

Deno.test({
  name: "maxPool2: webgpu and cpu match tf.maxPool and its gradient on the CPU backend (ties)",
  ...GPU_TEST,
  fn: () =>
    withGpu(() =>
      fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          const expected = await onCpu(() => tfjs(c));
          const cpu = await onCpu(() => ours(c));
          checkOp({ ...(await ours(c)) }, { ...expected }, BOTH, `webgpu ${c.label}`);
          checkOp({ ...cpu }, { ...expected }, BOTH, `cpu ${c.label}`);
        }),
        { seed: 2211, numRuns: runs(40) },
      )
    ),
});

Deno.test("maxPool2: NaN and -Infinity windows on cpu as tfjs's CPU maxPool", async () => {
  await initTf("cpu");
  const nan = NaN, inf = Infinity;
  // Windows (2 x 2 each, two channels interleaved): NaN first, all NaN, all -Infinity,
  // -Infinity then a value, +Infinity tie.
  const windows = [
    [nan, 1, 2, 2],
    [nan, nan, nan, nan],
    [-inf, -inf, -inf, -inf],
    [-inf, -5, -inf, -5],
    [inf, 0, inf, 3],
  ];
  const shape: Shape = [1, 2, 2 * windows.length, 2];
  const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
  windows.forEach((win, k) => {
    win.forEach((v, e) => {
      const [r, col] = [e >> 1, 2 * k + (e & 1)];
      for (let ch = 0; ch < 2; ch++) x[(r * shape[2] + col) * 2 + ch] = ch === 0 ? v : -v;
    });
  });
  const c: Case = { shape, x, dy: distinctDy(shape), label: "special values" };
  const expected = await tfjs(c);
  const got = await ours(c);
  // deepStrictEqual compares with Object.is: NaN equals NaN, infinities by sign.
  assert.deepStrictEqual(Array.from(got.y), Array.from(expected.y), "y");
  assert.deepStrictEqual(Array.from(got.dx), Array.from(expected.dx), "dx");
  assert.equal(expected.y[2], -Infinity, "tfjs: an all-NaN window pools to -Infinity");
});

gpuTest(
  "maxPool2: the model's shapes at batch 128 and a split grid on webgpu match the reference",
  async () => {
    const shapes: Shape[] = [
      [128, 28, 28, 32], // enhanced
      [128, 14, 14, 64],
      [128, 26, 26, 32], // baseline
      [128, 11, 11, 64], // odd: 5 x 5 out
      [4, 2050, 2049, 1], // scalar channels, 4.2M windows: more than 65,535 workgroups
    ];
    for (const [i, shape] of shapes.entries()) {
      const c = quantised(shape, 256, 100 + i);
      checkOp({ ...(await ours(c)) }, reference(c), BOTH, `webgpu ${c.label}`);
    }
  },
);

Deno.test("maxPool2: the model's pool layer runs this op with fused ops, tf.maxPool with stock", async () => {
  await initTf("cpu");
  const x = tf.tensor4d(quantised([2, 5, 6, 3], 3, 7).x, [2, 5, 6, 3]);
  const kernelsOf = async (ops: "fused" | "stock") => {
    const layer = maxPool2Layer(ops);
    const info = await tf.profile(() => tf.grad((a) => tf.sum(layer(a, { training: true })))(x));
    return new Set(info.kernelNames);
  };
  const fused = await kernelsOf("fused"), stock = await kernelsOf("stock");
  assert.ok(fused.has(MAX_POOL2) && fused.has(MAX_POOL2_GRAD), [...fused].join());
  assert.ok(!fused.has("MaxPool") && !fused.has("MaxPoolGrad"), [...fused].join());
  assert.ok(stock.has("MaxPool") && stock.has("MaxPoolGrad") && !stock.has(MAX_POOL2));
  x.dispose();
});

Deno.test("maxPool2: rejects what it cannot pool with a clear error", async () => {
  await initTf("cpu");
  const cases: [tf.Tensor, RegExp][] = [
    [tf.zeros([2, 4, 4]), /rank 4/],
    [tf.zeros([1, 4, 4, 1], "int32"), /float32, got int32/],
    [tf.zeros([1, 1, 4, 1]), /at least 2x2, got \[1,1,4,1\]/],
    [tf.zeros([0, 4, 4, 1]), /non-empty/],
  ];
  for (const [x, message] of cases) {
    assert.throws(() => maxPool2(x as tf.Tensor4D), message);
    x.dispose();
  }
});

// maxPool2Dropout: the pool with the dropout of its output fused in (the enhanced model's last
// pool). Exact against the composition dropout(maxPool2(x)) and its gradient, on webgpu
// (NaN-poisoned) and cpu: the same mask (same hash, same element index) and the same float32
// products, so any difference is a wrong mask bit or a misrouted element; 1 dispatch each way.
Deno.test({
  name:
    "maxPool2Dropout: equals dropout(maxPool2(x)) and its gradient exactly; 1 dispatch each way",
  ...GPU_TEST,
  fn: () =>
    withGpu(async () => {
      const arb = fc.record({
        c: caseArb,
        rate: fc.constantFrom(0, 0.1, 0.3, 0.5, 0.9),
        seed: fc.nat({ max: 0xffffffff }),
      });
      const fusedOn = (c: Case, rate: number, seed: number) =>
        run(c, (x) => maxPool2Dropout(x, rate, seed));
      const composed = (c: Case, rate: number, seed: number) =>
        run(c, (x) => dropout(maxPool2(x), rate, seed));
      await fc.assert(
        fc.asyncProperty(arb, async ({ c, rate, seed }) => {
          const label = `${c.label} rate=${rate} seed=${seed}`;
          const expected = await onCpu(() => composed(c, rate, seed));
          checkOp({ ...(await fusedOn(c, rate, seed)) }, { ...expected }, BOTH, `webgpu ${label}`);
          const cpu = await onCpu(() => fusedOn(c, rate, seed));
          checkOp({ ...cpu }, { ...expected }, BOTH, `cpu ${label}`);
        }),
        { seed: 2213, numRuns: runs(30) },
      );
      const x = tf.tensor4d(quantised([8, 14, 14, 64], 256, 9).x, [8, 14, 14, 64]);
      const dy = tf.ones([8, 7, 7, 64]);
      const forward = countDispatches(() => maxPool2Dropout(x, 0.3, 5));
      const backward = countDispatches(() =>
        tf.grad((a) => tf.sum(tf.mul(maxPool2Dropout(a as tf.Tensor4D, 0.3, 5), dy)))(x)
      );
      assert.equal(forward.count?.total, 1, JSON.stringify(forward.count));
      // tf.grad: the forward again, the pool gradient, and tfjs's mul / sum gradient ops.
      assert.equal(backward.count?.byProgram.get("MaxPool2GradProgram"), 1);
      assert.equal(backward.count?.byProgram.get("SeededDropoutProgram"), undefined);
      tf.dispose([x, dy, forward.result, backward.result]);
      assert.throws(() => maxPool2Dropout(x, 1, 5), /dropout rate must be in \[0, 1\), got 1/);
    }),
});
