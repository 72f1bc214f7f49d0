// Shared data builders, tolerances and checks of the fused conv + batch-norm + ReLU op, used by
// the Deno suites (conv_bn_relu_fwd_test.ts, conv_bn_relu_grad_test.ts) and by the kernel test
// page that runs in Chromium (browser_kernels_page.ts): one definition of what a case's data
// is and how close our kernels must be to the CPU reference, for both WebGPU implementations.
// Shapes and seeded values come from op_check.ts.

import * as tf from "@tensorflow/tfjs-core";
import { CONV_BN_RELU_TRAIN_GRAD } from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import {
  type ConvBnReluAttrs,
  convBnReluInfer,
  convBnReluTrain,
} from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import {
  convBnReluInferRef,
  convBnReluTrainRef,
} from "../../src/ops/conv_bn_relu/conv_bn_relu_ref.ts";
import { type ConvGeometry, convGeometry } from "../../src/ops/conv/geometry.ts";
import {
  bnReluBackwardRef,
  type ConvBnReluGradInputs,
  convBnReluGradRef,
  type ConvBnReluGrads,
} from "../../src/ops/conv_bn_relu/conv_bn_relu_grad_ref.ts";
import {
  batchStatsRef,
  bnMovingAverageRef,
  conv2dRef,
} from "../../src/ops/conv_bn_relu/conv_bn_relu_ref.ts";
import type { Tolerance } from "./compare.ts";
import {
  caseTiles,
  checkOp,
  type ConvCase,
  describeCase,
  fixedCase,
  seededUniform,
} from "./op_check.ts";
import { Rng } from "../../src/random.ts";

// ---- forward ----------------------------------------------------------------------------------

export const EPS = 1e-3;

// ---- tolerances (pass rule |a - e| <= atol + rtol * |e|) --------------------------------------
// Inputs are U(-1, 1), so one z element sums K = KH*KW*Cin <= 425 products of size <= 1: float32
// accumulation (in a different order than the float64 reference) is off by about
// sqrt(K) * 2^-24 * |partial sums| ~ 1e-5 in the worst cases here.
export const Z_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };
// mean/variance: float32 reductions over M = N*Ho*Wo <= ~400 values of z (two-pass within
// chunks, Chan's merge across chunks); invStd inherits the variance's relative error / 2, and
// var + eps >= 1e-3 bounds it.
export const STATS_TOL: Tolerance = { atol: 1e-4, rtol: 1e-4 };
// y = gamma*(z - mean)*invStd + beta: the absolute error of z - mean (~1e-5) is multiplied by
// invStd, up to 1/sqrt(eps) ~ 32 when a channel's variance is ~0 (e.g. a single output pixel).
export const Y_TOL: Tolerance = { atol: 1e-3, rtol: 1e-3 };

// ---- helpers ----------------------------------------------------------------------------------

export interface CaseData {
  c: ConvCase;
  g: ConvGeometry;
  x: Float32Array;
  filter: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  /** Running statistics for inference (variance > 0). */
  movingMean: Float32Array;
  movingVariance: Float32Array;
}

export function caseData(c: ConvCase): CaseData {
  const g = convGeometry(
    [c.n, c.h, c.w, c.cin],
    [c.kh, c.kw, c.cin, c.cout],
    c.strides,
    c.pad,
  );
  return {
    c,
    g,
    x: seededUniform(c.n * c.h * c.w * c.cin, c.seed),
    filter: seededUniform(c.kh * c.kw * c.cin * c.cout, c.seed + 1),
    gamma: seededUniform(c.cout, c.seed + 2).map((v) => 1 + 0.5 * v),
    beta: seededUniform(c.cout, c.seed + 3),
    movingMean: seededUniform(c.cout, c.seed + 4),
    movingVariance: seededUniform(c.cout, c.seed + 5).map((v) => 1 + 0.9 * v),
  };
}

/** Tensors of one case on the current backend. */
export function tensors(d: CaseData) {
  const { c } = d;
  return {
    x: tf.tensor4d(d.x, [c.n, c.h, c.w, c.cin]),
    filter: tf.tensor4d(d.filter, [c.kh, c.kw, c.cin, c.cout]),
    gamma: tf.tensor1d(d.gamma),
    beta: tf.tensor1d(d.beta),
    movingMean: tf.tensor1d(d.movingMean),
    movingVariance: tf.tensor1d(d.movingVariance),
  };
}

/** An inference op (ours or the stock one) on a case's tensors: the six inputs in order. */
export function inferOn(
  t: ReturnType<typeof tensors>,
  attrs: ConvBnReluAttrs,
  op: typeof convBnReluInfer = convBnReluInfer,
): tf.Tensor4D {
  return op(t.x, t.filter, t.gamma, t.beta, t.movingMean, t.movingVariance, attrs);
}

export interface FwdResult {
  y: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  yInfer: Float32Array;
}

/** Runs our op (training and inference) on the current backend and reads everything back. */
export async function runOurs(d: CaseData): Promise<FwdResult> {
  const t = tensors(d);
  const attrs = { strides: d.c.strides, pad: d.c.pad, epsilon: EPS, tiles: caseTiles(d.c) };
  const r = convBnReluTrain(t.x, t.filter, t.gamma, t.beta, attrs);
  const yi = inferOn(t, attrs);
  const out = {
    y: (await r.y.data()) as Float32Array,
    mean: (await r.mean.data()) as Float32Array,
    variance: (await r.variance.data()) as Float32Array,
    yInfer: (await yi.data()) as Float32Array,
  };
  tf.dispose([r.y, r.mean, r.variance, yi, ...Object.values(t)]);
  return out;
}

/** Momentum of the running-statistics update in the kernel checks (off Keras's 0.99 on purpose). */
export const MOMENTUM = 0.9;

/**
 * The raw kernel outputs [y, z, stats] and the running statistics updated from the case's
 * movingMean / movingVariance (ConvBnReluTrain with its optional inputs) on the current backend.
 */
export async function runTrainKernel(d: CaseData) {
  const t = tensors(d);
  const outs = tf.engine().runKernel("ConvBnReluTrain", {
    x: t.x,
    filter: t.filter,
    gamma: t.gamma,
    beta: t.beta,
    movingMean: t.movingMean,
    movingVariance: t.movingVariance,
  }, {
    strides: d.c.strides,
    pad: d.c.pad,
    epsilon: EPS,
    momentum: MOMENTUM,
    tiles: caseTiles(d.c),
  } as unknown as tf.NamedAttrMap) as tf.Tensor[];
  const [y, z, stats, newMean, newVariance] = await Promise.all(outs.map((o) => o.data()));
  tf.dispose([...outs, ...Object.values(t)]);
  return {
    y: y as Float32Array,
    z: z as Float32Array,
    stats: stats as Float32Array,
    newMean: newMean as Float32Array,
    newVariance: newVariance as Float32Array,
  };
}

// The running statistics from the kernel's own batch statistics: float32 mul/mul/add, where a
// GPU compiler's FMA contraction may skip one rounding (1 ulp; exact on the cpu backend).
export const MOVING_TOL: Tolerance = { atol: 1e-7, rtol: 1.2e-7 };

/** What the kernel's running-statistics outputs must be, given its batch statistics `stats`. */
export function movingRef(d: CaseData, stats: Float32Array) {
  const c = d.g.outC;
  return {
    newMean: bnMovingAverageRef(d.movingMean, stats.subarray(0, c), MOMENTUM),
    newVariance: bnMovingAverageRef(d.movingVariance, stats.subarray(c, 2 * c), MOMENTUM),
  };
}

export function refInfer(d: CaseData): Float32Array {
  const scale = d.gamma.map((g, i) => g / Math.sqrt(d.movingVariance[i] + EPS));
  const shift = d.beta.map((b, i) => b - d.movingMean[i] * scale[i]);
  return convBnReluInferRef(d.x, d.filter, scale, shift, d.g);
}

/** Checks the GPU kernels against the CPU reference for one case (webgpu must be current). */
export async function checkGpuAgainstRef(d: CaseData, label = describeCase(d.c)) {
  const ref = convBnReluTrainRef(d.x, d.filter, d.gamma, d.beta, d.g, EPS);
  const k = await runTrainKernel(d);
  const ours = await runOurs(d);
  const outC = d.g.outC;
  checkOp(
    { newMean: k.newMean, newVariance: k.newVariance },
    movingRef(d, k.stats),
    { newMean: MOVING_TOL, newVariance: MOVING_TOL },
    `${label}: running statistics`,
  );
  checkOp(
    {
      y: k.y,
      z: k.z,
      stats: k.stats,
      mean: ours.mean,
      variance: ours.variance,
      yInfer: ours.yInfer,
    },
    {
      ...ref,
      mean: ref.stats.subarray(0, outC),
      variance: ref.stats.subarray(outC, 2 * outC),
      yInfer: refInfer(d),
    },
    {
      z: Z_TOL,
      stats: STATS_TOL,
      y: Y_TOL,
      mean: STATS_TOL,
      variance: STATS_TOL,
      yInfer: Y_TOL,
    },
    label,
  );
}

// ---- shapes at the edges of the chunked batch-norm grids ---------------------------------------

/**
 * The batch-norm passes run on a grid of workgroups of 8 channel groups (of 4 channels when
 * Cout % 4 == 0) x about 64 / (channel blocks) row chunks, each workgroup merging the partials of
 * every chunk for its channels (src/ops/conv_bn_relu/conv_bn_relu_fwd.ts, conv_bn_relu_bwd.ts). These shapes
 * sit at that grid's edges: one row chunk at batch 1, rows not a multiple of the chunk, a partial
 * last channel block on the scalar and the vec4 path, two vec4 channel blocks.
 */
export const BN_GRID_CASES: ConvCase[] = [
  fixedCase({ x: [1, 5, 5, 3], k: 3, cout: 5, seed: 31 }), // 25 rows: one chunk, scalar
  fixedCase({ x: [3, 13, 11, 4], k: 3, cout: 12, seed: 32 }), // 429 rows: 6 chunks (72 .. 69)
  fixedCase({ x: [2, 17, 9, 3], k: 3, cout: 10, seed: 33 }), // scalar, 2 blocks (8 + 2 groups)
  fixedCase({ x: [4, 12, 12, 8], k: 3, cout: 36, seed: 34 }), // vec4, 2 blocks (8 + 1 groups)
];

// ---- backward ---------------------------------------------------------------------------------

export interface GradCaseData extends ConvBnReluGradInputs {
  x: Float32Array;
  filter: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  dy: Float32Array;
  z: Float32Array;
  stats: Float32Array;
  geometry: ConvGeometry;
  epsilon: number;
}

/**
 * Elements whose pre-activation gamma*xhat + beta lies within this distance of 0 get dy = 0.
 * Implementations compute z and the statistics with different rounding (float32 vs float64,
 * other summation orders: relative differences around 1e-6), so such an element's ReLU mask can
 * flip between them and its whole dy would change every gradient. With dy = 0 there, the mask
 * no longer matters and the comparison is exact up to rounding, for every implementation.
 */
export const RELU_MARGIN = 1e-3;

/** Values for a case: x, filter, dy in [-1, 1), |gamma| in [0.25, 1.5) with random sign. */
export function makeCaseData(c: ConvCase, epsilon = 1e-3): GradCaseData {
  const geometry = convGeometry(
    [c.n, c.h, c.w, c.cin],
    [c.kh, c.kw, c.cin, c.cout],
    c.strides,
    c.pad,
  );
  const rng = new Rng(c.seed);
  const uniform = (size: number, lo: number, hi: number) =>
    Float32Array.from({ length: size }, () => lo + (hi - lo) * rng.next());
  const x = uniform(c.n * c.h * c.w * c.cin, -1, 1);
  const filter = uniform(c.kh * c.kw * c.cin * c.cout, -1, 1);
  const gamma = Float32Array.from(
    { length: c.cout },
    () => (rng.next() < 0.5 ? -1 : 1) * (0.25 + 1.25 * rng.next()),
  );
  const beta = uniform(c.cout, -0.5, 0.5);
  const z = conv2dRef(x, filter, geometry);
  const stats = batchStatsRef(z, c.cout, epsilon);
  const dy = uniform(z.length, -1, 1);
  for (let i = 0; i < z.length; i++) {
    const ch = i % c.cout;
    const pre = gamma[ch] * (z[i] - stats[ch]) * stats[2 * c.cout + ch] + beta[ch];
    if (Math.abs(pre) < RELU_MARGIN) dy[i] = 0;
  }
  return { x, filter, gamma, beta, dy, z, stats, geometry, epsilon };
}

export const NAMES = ["dx", "dfilter", "dgamma", "dbeta"] as const;

export interface Tol {
  /** atol = scaledAtol * scale, scale = the largest sum of |terms| of the gradient. */
  scaledAtol: number;
  rtol: number;
  /** Bound on ||a - e||_2 / max(||e||_2, 1e-3 * scale * sqrt(length)). */
  relL2: number;
}

// Kernels vs the float64 reference: float32 rounding only (about 1e-7 relative per operation,
// growing like the square root of the number of terms).
export const KERNEL_TOL: Tol = { scaledAtol: 1e-5, rtol: 1e-4, relL2: 1e-4 };

/**
 * Per gradient, an upper bound of the sum of |terms| that make one element: the scale of its
 * float32 rounding error. A gradient can be far smaller than its terms (dfilter of a 1x1 conv
 * with one channel is exactly 0: dz is orthogonal to xhat, and x is proportional to it), so
 * tolerances relative to the result alone would demand more than float32 can give.
 */
export function gradScales(d: GradCaseData): Record<(typeof NAMES)[number], number> {
  const g = d.geometry;
  const { dgamma: sumGX, dbeta: sumG } = bnReluBackwardRef(d.dy, d.z, d.stats, d.gamma, d.beta);
  const rows = d.z.length / g.outC;
  // |terms| of dz = gamma*invStd * (g - (dbeta + xhat*dgamma) / M): dz itself can be pure
  // rounding noise (with M = 2, xhat = +-1 and dz vanishes), its terms are not.
  const dzMag = new Float64Array(d.z.length);
  for (let i = 0; i < d.z.length; i++) {
    const c = i % g.outC;
    const xhat = (d.z[i] - d.stats[c]) * d.stats[2 * g.outC + c];
    const k = Math.abs(d.gamma[c] * d.stats[2 * g.outC + c]);
    dzMag[i] = k * (Math.abs(d.dy[i]) + (Math.abs(sumG[c]) + Math.abs(xhat * sumGX[c])) / rows);
  }
  const maxAbs = (a: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
    return m;
  };
  let colSum = 0, rowSum = 0, dbeta = 0, dgamma = 0;
  for (let c = 0; c < g.outC; c++) {
    let s = 0, sb = 0, sg = 0;
    for (let r = 0; r < rows; r++) {
      const i = r * g.outC + c;
      const xhat = (d.z[i] - d.stats[c]) * d.stats[2 * g.outC + c];
      s += dzMag[i];
      sb += Math.abs(d.dy[i]);
      sg += Math.abs(d.dy[i] * xhat);
    }
    colSum = Math.max(colSum, s);
    dbeta = Math.max(dbeta, sb);
    dgamma = Math.max(dgamma, sg);
  }
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < g.outC; c++) s += dzMag[r * g.outC + c];
    rowSum = Math.max(rowSum, s);
  }
  return {
    dx: maxAbs(d.filter) * rowSum * g.kH * g.kW,
    dfilter: maxAbs(d.x) * colSum,
    dgamma,
    dbeta,
  };
}

export function checkGrads(
  actual: Record<(typeof NAMES)[number], ArrayLike<number>>,
  expected: ConvBnReluGrads,
  d: GradCaseData,
  tol: Tol,
  label: string,
) {
  const scales = gradScales(d);
  const tolerances = Object.fromEntries(NAMES.map((name) => {
    const scale = Math.max(scales[name], 1e-12);
    const floor = 1e-3 * scale * Math.sqrt(expected[name].length);
    return [name, {
      atol: tol.scaledAtol * scale,
      rtol: tol.rtol,
      relL2: tol.relL2,
      l2Floor: floor,
    }];
  }));
  checkOp({ ...actual }, { ...expected }, tolerances, label);
}

/** The op's attrs for a case (with its pinned tile config). */
export function attrsOf(c: ConvCase, d: GradCaseData) {
  return { strides: c.strides, pad: c.pad, epsilon: d.epsilon, tiles: caseTiles(c) };
}

/** attrsOf as a kernel's NamedAttrMap (tfjs types attrs as plain values; the plan is an object). */
export function kernelAttrsOf(c: ConvCase, d: GradCaseData): tf.NamedAttrMap {
  return attrsOf(c, d) as unknown as tf.NamedAttrMap;
}

/** Tensors of a case on the current backend (x, filter, gamma, beta, dy, z, stats). */
export function caseTensors(c: ConvCase, d: GradCaseData) {
  const g = d.geometry;
  const zShape: [number, number, number, number] = [g.batch, g.outH, g.outW, g.outC];
  return {
    dy: tf.tensor4d(d.dy, zShape),
    x: tf.tensor4d(d.x, [c.n, c.h, c.w, c.cin]),
    filter: tf.tensor4d(d.filter, [c.kh, c.kw, c.cin, c.cout]),
    gamma: tf.tensor1d(d.gamma),
    beta: tf.tensor1d(d.beta),
    z: tf.tensor4d(d.z, zShape),
    stats: tf.tensor2d(d.stats, [3, c.cout]),
  };
}

export async function readAll(ts: tf.Tensor[]): Promise<ConvBnReluGrads> {
  const out: Record<string, Float32Array> = {};
  for (let i = 0; i < NAMES.length; i++) out[NAMES[i]] = (await ts[i].data()) as Float32Array;
  return out as unknown as ConvBnReluGrads;
}

/**
 * Runs a backward kernel (the 4-output ConvBnReluTrainGrad unless given) on the current backend
 * and reads its outputs as [dx, dfilter, dgamma, dbeta] (ConvBnReluTrainParamGrads puts dz first).
 */
export async function runGradKernel(
  c: ConvCase,
  d: GradCaseData,
  kernel = CONV_BN_RELU_TRAIN_GRAD,
): Promise<ConvBnReluGrads> {
  const t = caseTensors(c, d);
  const outs = tf.engine().runKernel(kernel, t, kernelAttrsOf(c, d)) as tf.Tensor[];
  const r = await readAll(outs);
  tf.dispose([...outs, ...Object.values(t)]);
  return r;
}

/** A fixed case (fixedCase's fields), its data and its CPU-reference gradients. */
export function fixedGradCase(p: Parameters<typeof fixedCase>[0]) {
  const c = fixedCase(p);
  const d = makeCaseData(c);
  return { c, d, expected: convBnReluGradRef(d, d.geometry) };
}
