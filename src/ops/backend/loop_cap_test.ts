// The loop-cap probe (loop_cap.ts) and the ops' choice of their capped paths.
//
// 1. The probe on the installed adapter, checked against what a real kernel does: tfjs-webgpu's
//    stock Conv2DBackpropFilter run whole at batch 128 on 28x28 loops 100,352 times per output
//    element. Where the probe says "capped" that sum must come out short (lavapipe 22.3: relL2
//    ~0.6), where it says "runs to the end" it must match the reference. So a probe that lied
//    either way fails here, on Mesa 22.3 and on Mesa 25 alike.
// 2. With the probe's answer injected (withLoopCapped), each op takes the capped path or not:
//    batch slices of the stock filter gradient, filter-gradient splits, the BiasActGrad and
//    pool-gradient row caps, the dense K/C limit. Values are compared only where the chosen path
//    is right on this adapter (the uncapped path on a capped adapter is wrong by design).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { currentAdapter, describeAdapter, initTf } from "../../tf/setup.ts";
import {
  CAPPED_LOOP_BUDGET,
  LAVAPIPE_LOOP_CAP,
  loopBudget,
  loopCapped,
  loopCapProbe,
  PROBE_NESTED,
  PROBE_SINGLE,
  probeLoopCap,
  withLoopCapped,
} from "./loop_cap.ts";
import { filterSplits } from "../conv/gemm.ts";
import { convGeometry } from "../conv/geometry.ts";
import { allConfigs } from "../conv/tiling.ts";
import {
  BIAS_ACT_GRAD_MAX_ROWS,
  biasActGrad,
  biasActGradMaxRows,
} from "../bias_act_grad/bias_act_grad.ts";
import {
  POOL_GRAD_MAX_WINDOWS,
  poolGradMaxWindows,
} from "../conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { denseBiasAct } from "../dense_bias_act/dense_bias_act.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import { assertClose, relL2 } from "../../../test/helpers/compare.ts";
import { GPU_TEST, seededUniform } from "../../../test/helpers/op_check.ts";

/** dfilter[kh][kw][ci][co] = sum over n, y, x of x[n, y+kh, x+kw, ci] * dy[n, y, x, co] (valid). */
function filterGradRef(
  x: Float32Array,
  dy: Float32Array,
  [n, h, w, cin]: number[],
  [kh, kw, cout]: number[],
): Float64Array {
  const oh = h - kh + 1, ow = w - kw + 1;
  const out = new Float64Array(kh * kw * cin * cout);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            for (let ci = 0; ci < cin; ci++) {
              const xv = x[((b * h + oy + i) * w + ox + j) * cin + ci];
              const dyAt = ((b * oh + oy) * ow + ox) * cout;
              const outAt = ((i * kw + j) * cin + ci) * cout;
              for (let co = 0; co < cout; co++) out[outAt + co] += xv * dy[dyAt + co];
            }
          }
        }
      }
    }
  }
  return out;
}

// 128 x 28 x 28 x 1 -> 3x3 valid -> 26 x 26 x 4: 86,528 output rows per filter element, past the
// 65,535 cap, with 4 stock slices when capped.
const X_SHAPE: [number, number, number, number] = [128, 28, 28, 1];
const DY_SHAPE: [number, number, number, number] = [128, 26, 26, 4];

/** tfjs's Conv2DBackpropFilter kernel (3x3 valid, stride 1): the sliced wrapper on webgpu. */
function stockFilterGrad(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
    strides: [1, 1],
    pad: "valid",
    dataFormat: "NHWC",
    filterShape: [3, 3, X_SHAPE[3], DY_SHAPE[3]],
  }) as tf.Tensor;
}

Deno.test({
  name: "loop-cap probe: its answer on this adapter matches what a long stock loop computes",
  ...GPU_TEST,
  fn: async () => {
    const report = await initTf("webgpu");
    const probe = loopCapProbe();
    assert.ok(probe, "initTf ran the probe");
    const [outer, inner] = PROBE_NESTED;
    if (probe.capped) {
      assert.equal(report.loopCap, probe.single);
      assert.ok(
        probe.single < PROBE_SINGLE,
        `capped: the single loop stopped early (${probe.single})`,
      );
      assert.match(describeAdapter(report), /loops stop after [\d,]+ iterations/);
    } else {
      assert.equal(report.loopCap, null);
      assert.deepEqual([probe.single, probe.nested], [PROBE_SINGLE, outer * inner]);
      assert.doesNotMatch(describeAdapter(report), /loops stop/);
    }
    assert.equal(loopCapped(), probe.capped, "the ops read the probe's answer");
    // The Mesa releases this project was measured on (lavapipe 22.3.6 capped, 25.0.7 not).
    const major = Number(/^Mesa (\d+)\./.exec(report.driver)?.[1] ?? NaN);
    if (major <= 22) {
      assert.ok(probe.capped, `${report.driver} caps loops`);
      assert.equal(probe.single, LAVAPIPE_LOOP_CAP);
    }
    if (major >= 25) assert.ok(!probe.capped, `${report.driver} runs loops to the end`);
    // A second probe on the same device gives the same answer (the kernel is deterministic).
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    assert.deepEqual(await probeLoopCap(device), probe);

    // The real kernel, run whole (the uncapped path), against the float64 reference.
    const xs = seededUniform(X_SHAPE.reduce((a, b) => a * b), 11);
    const dys = seededUniform(DY_SHAPE.reduce((a, b) => a * b), 12);
    const x = tf.tensor4d(xs, X_SHAPE);
    const dy = tf.tensor4d(dys, DY_SHAPE);
    const ref = filterGradRef(xs, dys, X_SHAPE, [3, 3, 4]);
    const whole = withLoopCapped(
      false,
      () => stockFilterGrad(x, dy),
    );
    const err = relL2(await whole.data(), ref);
    if (probe.capped) {
      assert.ok(
        err > 1e-2,
        `capped adapter: the whole stock loop must come out short, relL2 ${err}`,
      );
    } else {
      assert.ok(err < 1e-4, `uncapped adapter: the whole stock loop is right, relL2 ${err}`);
    }
    // The capped path (batch slices) is right on every adapter.
    const sliced = withLoopCapped(
      true,
      () => stockFilterGrad(x, dy),
    );
    assert.ok(relL2(await sliced.data(), ref) < 1e-4, "batch slices match the reference");
    tf.dispose([x, dy, whole, sliced]);
  },
});

Deno.test({
  name: "loop cap injected: each op takes its capped path only when loops are capped",
  ...GPU_TEST,
  fn: async () => {
    await initTf("webgpu");
    const capped = loopCapProbe()!.capped;

    // Budgets and limits.
    withLoopCapped(true, () => {
      assert.equal(loopBudget(), CAPPED_LOOP_BUDGET);
      assert.equal(biasActGradMaxRows(), BIAS_ACT_GRAD_MAX_ROWS);
      assert.equal(poolGradMaxWindows(), POOL_GRAD_MAX_WINDOWS);
    });
    withLoopCapped(false, () => {
      assert.equal(loopBudget(), Infinity);
      assert.equal(biasActGradMaxRows(), Infinity);
      assert.equal(poolGradMaxWindows(), Infinity);
    });
    assert.equal(loopCapped(), capped, "withLoopCapped restores the probe's answer");

    // Filter-gradient splits: 4096 x 28 x 28 -> 3x3 same; a splitK-32 config wants 3584 output
    // rows (100,352 pixels) per slice, past the budget, so capped it takes more, smaller slices.
    const g = convGeometry([4096, 28, 28, 8], [3, 3, 8, 8], 1, "same");
    const cfg = allConfigs("bwdFilter").find((c) => c.splitK === 32 && !c.stageInWorkgroupMemory)!;
    const few = withLoopCapped(false, () => filterSplits(cfg, g));
    const many = withLoopCapped(true, () => filterSplits(cfg, g));
    assert.equal(few.numSplits, 32);
    assert.ok(many.numSplits > few.numSplits, JSON.stringify({ few, many }));
    assert.ok(many.rowsPerSplit * g.outW <= CAPPED_LOOP_BUDGET);

    // The stock filter gradient: batch slices (4 stock dispatches + slices + adds) or one.
    const x = tf.zeros(X_SHAPE) as tf.Tensor4D;
    const dy = tf.zeros(DY_SHAPE) as tf.Tensor4D;
    const stock = (cap: boolean) =>
      countDispatches(() => withLoopCapped(cap, () => stockFilterGrad(x, dy)));
    const one = stock(false), sliced = stock(true);
    assert.equal(one.count?.total, 1, JSON.stringify(one.count));
    assert.ok((sliced.count?.total ?? 0) >= 4 + 3, JSON.stringify(sliced.count));
    tf.dispose([x, dy, one.result, sliced.result]);

    // BiasActGrad past the capped row limit: tfjs's ops (several dispatches) or our one pass.
    // The one pass loops 60,001 times per lane here, right on every adapter, so values are checked.
    const rows = BIAS_ACT_GRAD_MAX_ROWS + 16;
    const dyv = seededUniform(rows, 21), yv = seededUniform(rows, 22).map(Math.abs);
    yv[0] = 0;
    const dyt = tf.tensor2d(dyv, [rows, 1]), yt = tf.tensor2d(yv, [rows, 1]);
    let refSum = 0;
    for (let i = 0; i < rows; i++) if (yv[i] > 0) refSum += dyv[i];
    for (const cap of [true, false]) {
      const { result, count } = countDispatches(() =>
        withLoopCapped(cap, () => biasActGrad(dyt, yt, "relu"))
      );
      if (cap) assert.ok((count?.total ?? 0) > 1, `capped: tfjs's ops, ${JSON.stringify(count)}`);
      else assert.equal(count?.total, 1, `uncapped: one pass, ${JSON.stringify(count)}`);
      assertClose(
        await result.dbias.data(),
        [refSum],
        { atol: 1e-2, rtol: 1e-4 },
        `dbias cap=${cap}`,
      );
      tf.dispose([result.dz, result.dbias]);
    }
    tf.dispose([dyt, yt]);

    // Dense: K past half the budget is refused where loops are capped, computed where not (the
    // forward loop is K / 4 = 10,000 steps, right on every adapter).
    const k = 40_000;
    const xd = tf.tensor2d(seededUniform(2 * k, 31), [2, k]);
    const kd = tf.tensor2d(seededUniform(k * 4, 32), [k, 4]);
    const bd = tf.zeros([4]) as tf.Tensor1D;
    assert.throws(
      () => withLoopCapped(true, () => denseBiasAct(xd, kd, bd, "linear")),
      /K and C must be <= 30000, got 40000, 4/,
    );
    const yd = withLoopCapped(false, () => denseBiasAct(xd, kd, bd, "linear"));
    const xr = await xd.data(), kr = await kd.data();
    const want = new Float64Array(8);
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < 4; c++) {
        for (let i = 0; i < k; i++) want[r * 4 + c] += xr[r * k + i] * kr[i * 4 + c];
      }
    }
    // float32 sums of 40,000 terms of |x| <= 1: ~1e-3 absolute error at worst.
    assertClose(await yd.data(), want, { atol: 5e-3, rtol: 1e-3 }, "dense K = 40,000");
    tf.dispose([xd, kd, bd, yd]);
    assert.equal(currentAdapter()?.backend, "webgpu");
  },
});
