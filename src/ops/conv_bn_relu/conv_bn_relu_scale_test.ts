// The fused conv + batch-norm + ReLU op at the sizes the models really run, through the public
// API only (convBnReluTrain / convBnReluInfer, gradients by tf.grads), on webgpu, against the
// float64 host reference in helpers/conv_bn_relu_f64.ts (two-pass statistics; independent of the
// op's own CPU reference). Stock tfjs-webgpu is no reference here: its conv2d filter gradient is
// wrong past ~65k output rows on llvmpipe (see src/ops/conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts).
//
// Cases (few and large; each covers outputs, batch mean/variance, inference and all four
// gradients): every conv layer of `enhanced` at batch 128; `baseline`'s valid-padding shapes at
// batch 128; `wide`'s channel counts at batch 16-32. All have M = N·Ho·Wo in the thousands to
// 100k rows, so every reduction (statistics, dbeta/dgamma, dfilter) spans many chunks or
// workgroups. Edge cases at real sizes: a zero-variance channel (its filter column is zero, so
// z = 0 there: invStd = 1/sqrt(eps) amplifies any error in the mean), M = 1 (256 channels), and a
// large mean (|mean| / std ~ 300 at 43k rows: an unshifted float32 sum of squares loses the
// variance entirely).
//
// Tolerances, per array, pass rule |a - e| <= atol + rtol·|e| plus a relative-L2 bound:
//   forward y, inference y:  atol 1e-4·max|e|, rtol 1e-4, relL2 1e-5
//   mean, variance:          atol 1e-5·max|e| (+1e-7), rtol 1e-4
//   dx, dfilter, dgamma, dbeta: atol 2e-4·max|e|, rtol 1e-3, relL2 1e-4
//   large-mean case: y relL2 1e-3 and gradients within 2e-3·sum|terms| per element (see there)
// Pre-activations within y's tolerance of zero are ReLU ties; the op's own mask decides those in
// the reference (printed: ties per case).
// Float32 sums over M terms, split over chunks/workgroups, have relative errors around
// 1e-6..1e-5 of their largest terms (measured below, printed per case); the bounds leave 10x or
// more, while a lost chunk or a wrong scale (e.g. the stock dw bug: relL2 0.4-0.6) fails them by
// orders of magnitude.

import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { setPoisonOutputs } from "../backend/webgpu_program.ts";
import { convBnReluInfer, convBnReluTrain } from "./conv_bn_relu.ts";
import { DEFAULT_EPSILON } from "./conv_bn_relu_stock.ts";
import { convGeometry } from "../conv/geometry.ts";
import { configById, type TileConfig } from "../conv/tiling.ts";
import { defaultTilePlan, pinTileConfig } from "../conv/tile_plan.ts";
import { compareArrays, type Tolerance } from "../../../test/helpers/compare.ts";
import {
  convBnReluForwardF64,
  convBnReluGradsF64,
  convBnReluInferF64,
  uniformArray,
} from "../../../test/helpers/conv_bn_relu_f64.ts";

interface ScaleCase {
  name: string;
  n: number;
  hw: number;
  cin: number;
  cout: number;
  pad: "same" | "valid";
  /** Output channel whose filter column is zeroed (z = 0, variance 0). */
  zeroChannel?: number;
  /** Added to every input pixel (large-mean statistics). */
  xOffset?: number;
}

const TOL: Record<string, Tolerance> = {
  y: { atol: 1e-4, rtol: 1e-4, relL2: 1e-5 },
  stats: { atol: 1e-5, rtol: 1e-4 },
  grad: { atol: 2e-4, rtol: 1e-3, relL2: 1e-4 },
};

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Tolerance with atol scaled by the reference's largest magnitude. */
function scaled(t: Tolerance, ref: ArrayLike<number>, floor = 0): Tolerance {
  return { ...t, atol: t.atol * maxAbs(ref) + floor };
}

/** Per-element bound: c · (sum of |terms| behind the element). */
function termScaled(absTerms: Float64Array, c: number): Float64Array {
  return absTerms.map((v) => c * v + 1e-7);
}

function compareTermScaled(
  a: ArrayLike<number>,
  e: ArrayLike<number>,
  bound: Float64Array,
  label: string,
) {
  const r = compareArrays(a, e, { atol: Infinity, rtol: 0 }, label);
  const off: string[] = [];
  let n = 0;
  for (let i = 0; i < e.length; i++) {
    if (!(Math.abs(a[i] - e[i]) <= bound[i])) {
      n++;
      if (off.length < 5) off.push(`[${i}] got ${a[i]} want ${e[i]} (bound ${bound[i]})`);
    }
  }
  const ok = n === 0 && a.length === e.length;
  return {
    ok,
    relL2: r.relL2,
    message: ok ? "" : `${label}: ${n}/${e.length} beyond c·sum|terms|; ${off.join(", ")}`,
  };
}

async function runCase(c: ScaleCase, config?: TileConfig): Promise<void> {
  const eps = DEFAULT_EPSILON;
  const g = convGeometry([c.n, c.hw, c.hw, c.cin], [3, 3, c.cin, c.cout], 1, c.pad);
  const xs = uniformArray(c.n * c.hw * c.hw * c.cin, 11, -1, 1);
  if (c.xOffset) { for (let i = 0; i < xs.length; i++) xs[i] = c.xOffset + 0.5 * xs[i]; }
  const bound = Math.sqrt(3 / (9 * c.cin)); // He-like scale: z has unit-order spread
  const ws = uniformArray(9 * c.cin * c.cout, 12, -bound, bound);
  if (c.zeroChannel !== undefined) {
    for (let i = c.zeroChannel; i < ws.length; i += c.cout) ws[i] = 0;
  }
  const gs = uniformArray(c.cout, 13, 0.5, 1.5);
  const bs = uniformArray(c.cout, 14, -0.5, 0.5);
  if (c.zeroChannel !== undefined) bs[c.zeroChannel] = 0.3; // ReLU passes: dz is not masked out
  const dys = uniformArray(c.n * g.outH * g.outW * c.cout, 15, -1, 1);
  const mm = uniformArray(c.cout, 16, -0.2, 0.2);
  const mv = uniformArray(c.cout, 17, 0.5, 2);

  const x = tf.tensor4d(xs, [c.n, c.hw, c.hw, c.cin]);
  const w = tf.tensor4d(ws, [3, 3, c.cin, c.cout]);
  const gamma = tf.tensor1d(gs);
  const beta = tf.tensor1d(bs);
  const dy = tf.tensor4d(dys, [c.n, g.outH, g.outW, c.cout]);
  const movingMean = tf.tensor1d(mm);
  const movingVar = tf.tensor1d(mv);
  const tiles = config ? pinTileConfig(defaultTilePlan(tf.backend()), config) : undefined;
  const attrs = { strides: 1, pad: c.pad, tiles } as const;

  const fwd = convBnReluTrain(x, w, gamma, beta, attrs);
  const infer = convBnReluInfer(x, w, gamma, beta, movingMean, movingVar, attrs);
  const grads = tf.grads((...[a, b, gm, bt]: tf.Tensor[]) =>
    convBnReluTrain(
      a as tf.Tensor4D,
      b as tf.Tensor4D,
      gm as tf.Tensor1D,
      bt as tf.Tensor1D,
      attrs,
    ).y
  )([x, w, gamma, beta], dy);
  const got = {
    y: await fwd.y.data(),
    mean: await fwd.mean.data(),
    variance: await fwd.variance.data(),
    infer: await infer.data(),
    dx: await grads[0].data(),
    dfilter: await grads[1].data(),
    dgamma: await grads[2].data(),
    dbeta: await grads[3].data(),
  };
  tf.dispose([x, w, gamma, beta, dy, movingMean, movingVar, fwd.y, fwd.mean, fwd.variance]);
  tf.dispose([infer, ...grads]);

  const ref = convBnReluForwardF64(xs, ws, gs, bs, g, eps);
  const refInfer = convBnReluInferF64(ref.z, gs, bs, mm, mv, eps);
  // Pre-activations within y's tolerance of 0 are ties: the op's mask decides them (see helper).
  const tie = TOL.y.atol * maxAbs(ref.y) * (c.xOffset ? 10 : 1);
  const mask = new Uint8Array(ref.pre.length);
  let ties = 0;
  for (let i = 0; i < mask.length; i++) {
    if (Math.abs(ref.pre[i]) <= tie) ties++;
    mask[i] = (Math.abs(ref.pre[i]) <= tie ? got.y[i] > 0 : ref.pre[i] > 0) ? 1 : 0;
  }
  const refGrads = convBnReluGradsF64(xs, ws, gs, bs, dys, ref, g, eps, mask);
  // Large mean: z = conv(x) carries float32 rounding of |z| ~ 100, about 1e-4 of its spread, and
  // dfilter = sum(x·dz) cancels terms of size 100·|dz|: the float32 result is only as good as the
  // sum of |terms| behind each element allows, so there the gradient bound is 2e-3·sum|terms|.
  const gradTol = (name: keyof typeof refGrads.abs) =>
    c.xOffset ? termScaled(refGrads.abs[name], 2e-3) : scaled(TOL.grad, refGrads[name]);
  const yTol = c.xOffset ? { ...TOL.y, relL2: 1e-3 } : TOL.y;

  const checks: [string, ArrayLike<number>, ArrayLike<number>, Tolerance | Float64Array][] = [
    ["y", got.y, ref.y, scaled(yTol, ref.y)],
    ["mean", got.mean, ref.mean, scaled(TOL.stats, ref.mean, 1e-7)],
    ["variance", got.variance, ref.variance, scaled(TOL.stats, ref.variance, 1e-7)],
    ["infer y", got.infer, refInfer, scaled(yTol, refInfer)],
    ["dx", got.dx, refGrads.dx, gradTol("dx")],
    ["dfilter", got.dfilter, refGrads.dfilter, gradTol("dfilter")],
    ["dgamma", got.dgamma, refGrads.dgamma, gradTol("dgamma")],
    ["dbeta", got.dbeta, refGrads.dbeta, gradTol("dbeta")],
  ];
  const failures: string[] = [];
  const errors: string[] = [];
  for (const [label, a, e, tol] of checks) {
    const r = tol instanceof Float64Array
      ? compareTermScaled(a, e, tol, `${c.name} ${label}`)
      : compareArrays(a, e, tol, `${c.name} ${label}`);
    errors.push(`${label} ${r.relL2.toExponential(1)}`);
    if (!r.ok) failures.push(r.message);
  }
  if (c.zeroChannel !== undefined) {
    const k = c.zeroChannel;
    if (got.variance[k] !== 0 && !(Math.abs(got.variance[k]) < 1e-9)) {
      failures.push(`${c.name}: zero-variance channel ${k} has variance ${got.variance[k]}`);
    }
  }
  console.log(
    `  ${c.name} (M=${c.n * g.outH * g.outW}, ${ties} ReLU ties) rel L2: ${errors.join(", ")}`,
  );
  if (failures.length > 0) throw new Error(failures.join("\n"));
}

/** Every case, with `config` pinned for its view where given. */
async function runAll(cases: ScaleCase[], config?: TileConfig) {
  await initTf("webgpu");
  setPoisonOutputs(true);
  try {
    for (const c of cases) await runCase(c, config);
  } finally {
    setPoisonOutputs(false);
  }
}

Deno.test("conv+BN+ReLU at product scale: enhanced's layers at batch 128 (zero-variance channel in 32->32)", async () => {
  await runAll([
    { name: "enhanced 1->32 28x28", n: 128, hw: 28, cin: 1, cout: 32, pad: "same" },
    {
      name: "enhanced 32->32 28x28",
      n: 128,
      hw: 28,
      cin: 32,
      cout: 32,
      pad: "same",
      zeroChannel: 5,
    },
    { name: "enhanced 32->64 14x14", n: 128, hw: 14, cin: 32, cout: 64, pad: "same" },
    { name: "enhanced 64->64 14x14", n: 128, hw: 14, cin: 64, cout: 64, pad: "same" },
  ]);
});

Deno.test("conv+BN+ReLU at product scale: baseline's valid shapes at batch 128, large mean", async () => {
  await runAll([
    { name: "valid 1->32 28x28", n: 128, hw: 28, cin: 1, cout: 32, pad: "valid" },
    { name: "valid 32->64 13x13", n: 128, hw: 13, cin: 32, cout: 64, pad: "valid" },
    {
      name: "large mean 1->32 valid 28x28",
      n: 64,
      hw: 28,
      cin: 1,
      cout: 32,
      pad: "valid",
      xOffset: 100,
    },
  ]);
});

Deno.test("conv+BN+ReLU at product scale: wide's channel counts, and M = 1 at 256 channels", async () => {
  await runAll([
    { name: "wide 1->64 28x28", n: 32, hw: 28, cin: 1, cout: 64, pad: "same" },
    { name: "wide 64->64 28x28", n: 16, hw: 28, cin: 64, cout: 64, pad: "same" },
    { name: "wide 128->128 14x14", n: 16, hw: 14, cin: 128, cout: 128, pad: "same" },
    { name: "wide 256->256 7x7", n: 32, hw: 7, cin: 256, cout: 256, pad: "same" },
    { name: "M=1 256->256 1x1", n: 1, hw: 1, cin: 256, cout: 256, pad: "same", zeroChannel: 3 },
  ]);
});

// The software candidates that are not a view's default run nowhere else at product scale: the
// second tap-window filter-gradient config (gemm_window_wgsl.ts), forced on every layer shape
// kind it meets (the model-input layer's one channel group, 28- and 14-wide rows, valid padding,
// 7x7 with 256 channels).
Deno.test("conv+BN+ReLU at product scale: the other tap-window dfilter config (r4c16 s64)", async () => {
  const config = configById("bwdFilter.r4c16v4s64.win");
  if (!config) throw new Error("bwdFilter.r4c16v4s64.win is not in the configuration space");
  await runAll([
    { name: "win r4c16 1->32 28x28", n: 128, hw: 28, cin: 1, cout: 32, pad: "same" },
    { name: "win r4c16 32->32 28x28", n: 128, hw: 28, cin: 32, cout: 32, pad: "same" },
    { name: "win r4c16 64->64 14x14", n: 128, hw: 14, cin: 64, cout: 64, pad: "same" },
    { name: "win r4c16 valid 32->64 13x13", n: 128, hw: 13, cin: 32, cout: 64, pad: "valid" },
    { name: "win r4c16 256->256 7x7", n: 32, hw: 7, cin: 256, cout: 256, pad: "same" },
  ], config);
});
