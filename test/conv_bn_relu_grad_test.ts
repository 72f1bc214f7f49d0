// Backward of the fused conv + batch-norm + ReLU op (ConvBnReluTrainGrad and the gradient of
// ConvBnReluTrain), checked three ways on random shapes (fast-check, seeded):
//   1. WGSL kernels (fast path and v1) vs the plain-loop CPU reference;
//   2. the CPU reference vs tf.grads of the stock chain (conv2d, moments, batchNorm, relu) on
//      the cpu backend, loss = sum(y * dy);
//   3. end to end: tf.grads through the public convBnReluTrain on webgpu vs the stock chain on
//      cpu.
// Tolerances (pass rule |a - e| <= atol + rtol*|e|, per gradient): atol is scaled by the sum of
// |terms| behind one element (gradScales), because dx, dfilter, dgamma and dbeta are float32 sums
// whose rounding error grows with their terms, not with the result (dfilter and dgamma add
// M = N*Ho*Wo products; dz itself is a difference of three such sums). A relative L2 bound
// checks each whole array. FMNIST_SOAK=1 runs many more cases.

import fc from "fast-check";
import { throws } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { initTf } from "../src/tf/setup.ts";
import { setPoisonOutputs } from "../src/ops/webgpu_program.ts";
import { convBnReluTrain } from "../src/ops/conv_bn_relu.ts";
import { convBnReluTrainStock } from "../src/ops/conv_bn_relu_stock.ts";
import { CONV_BN_RELU_TRAIN_GRAD } from "../src/ops/conv_bn_relu_grad.ts";
import { convBnReluTrainGradWebGPU } from "../src/ops/conv_bn_relu_bwd.ts";
import {
  bnReluBackwardRef,
  type ConvBnReluGradInputs,
  convBnReluGradRef,
  type ConvBnReluGrads,
} from "../src/ops/conv_bn_relu_grad_ref.ts";
import { compareArrays } from "./helpers/compare.ts";
import { type ConvGeometry, convGeometry } from "../src/ops/conv_geometry.ts";
import { batchStatsRef, conv2dRef } from "../src/ops/conv_bn_relu_ref.ts";

// ---- random cases: shapes from fast-check, values from a seeded generator, z and stats from
// the forward reference.

interface GradCase {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  strides: [number, number];
  pad: "same" | "valid";
  seed: number;
}

const CHANNELS = [1, 3, 4, 5, 8, 17];
const KERNELS = [1, 3, 5];

/**
 * Batch 1..4, H, W 1..9 (up to 15 with stride 2), channels from {1,3,4,5,8,17}, kernels 1/3/5
 * square or rectangular, strides 1/2 per axis, same/valid. `valid` cases grow H, W to fit the
 * kernel (tfjs rejects an empty output).
 */
function gradCaseArbWith(channels: number[]): fc.Arbitrary<GradCase> {
  return fc.record({
    n: fc.integer({ min: 1, max: 4 }),
    h: fc.integer({ min: 1, max: 9 }),
    w: fc.integer({ min: 1, max: 9 }),
    extraH: fc.integer({ min: 0, max: 6 }),
    extraW: fc.integer({ min: 0, max: 6 }),
    cin: fc.constantFrom(...channels),
    cout: fc.constantFrom(...channels),
    kh: fc.constantFrom(...KERNELS),
    kw: fc.constantFrom(...KERNELS),
    sh: fc.constantFrom(1, 2),
    sw: fc.constantFrom(1, 2),
    pad: fc.constantFrom("same" as const, "valid" as const),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  }).map((r) => {
    let h = r.h + (r.sh === 2 ? r.extraH : 0);
    let w = r.w + (r.sw === 2 ? r.extraW : 0);
    if (r.pad === "valid") {
      h = Math.max(h, r.kh);
      w = Math.max(w, r.kw);
    }
    return {
      n: r.n,
      h,
      w,
      cin: r.cin,
      cout: r.cout,
      kh: r.kh,
      kw: r.kw,
      strides: [r.sh, r.sw] as [number, number],
      pad: r.pad,
      seed: r.seed,
    };
  });
}

const gradCaseArb = gradCaseArbWith(CHANNELS);
// Multiples of 4 take the vec4 kernels; 12 and 20 leave partial channel tiles (tiles are 8 wide).
const vec4CaseArb = gradCaseArbWith([4, 8, 12, 20]);

function describeCase(c: GradCase): string {
  return `x=[${c.n},${c.h},${c.w},${c.cin}] w=[${c.kh},${c.kw},${c.cin},${c.cout}] ` +
    `strides=[${c.strides}] pad=${c.pad} seed=${c.seed}`;
}

/** mulberry32: a small seeded generator of uniform [0, 1) floats. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface GradCaseData extends ConvBnReluGradInputs {
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
const RELU_MARGIN = 1e-3;

/** Values for a case: x, filter, dy in [-1, 1), |gamma| in [0.25, 1.5) with random sign. */
function makeCaseData(c: GradCase, epsilon = 1e-3): GradCaseData {
  const geometry = convGeometry(
    [c.n, c.h, c.w, c.cin],
    [c.kh, c.kw, c.cin, c.cout],
    c.strides,
    c.pad,
  );
  const rand = seededRandom(c.seed);
  const uniform = (size: number, lo: number, hi: number) =>
    Float32Array.from({ length: size }, () => lo + (hi - lo) * rand());
  const x = uniform(c.n * c.h * c.w * c.cin, -1, 1);
  const filter = uniform(c.kh * c.kw * c.cin * c.cout, -1, 1);
  const gamma = Float32Array.from(
    { length: c.cout },
    () => (rand() < 0.5 ? -1 : 1) * (0.25 + 1.25 * rand()),
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

const SOAK = Deno.env.get("FMNIST_SOAK") === "1";
const runs = (quick: number) => SOAK ? quick * 10 : quick;
const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };
const NAMES = ["dx", "dfilter", "dgamma", "dbeta"] as const;

interface Tol {
  /** atol = scaledAtol * scale, scale = the largest sum of |terms| of the gradient. */
  scaledAtol: number;
  rtol: number;
  /** Bound on ||a - e||_2 / max(||e||_2, 1e-3 * scale * sqrt(length)). */
  relL2: number;
}

// Kernels vs the float64 reference: float32 rounding only (about 1e-7 relative per operation,
// growing like the square root of the number of terms).
const KERNEL_TOL: Tol = { scaledAtol: 1e-5, rtol: 1e-4, relL2: 1e-4 };
// Anything vs tfjs's stock chain: it also rounds z, the moments and the batch-norm chain in
// float32 in another order (x - mean, then / sqrt(var + eps), ...).
const STOCK_TOL: Tol = { scaledAtol: 1e-4, rtol: 1e-3, relL2: 1e-3 };

/**
 * Per gradient, an upper bound of the sum of |terms| that make one element: the scale of its
 * float32 rounding error. A gradient can be far smaller than its terms (dfilter of a 1x1 conv
 * with one channel is exactly 0: dz is orthogonal to xhat, and x is proportional to it), so
 * tolerances relative to the result alone would demand more than float32 can give.
 */
function gradScales(d: GradCaseData): Record<(typeof NAMES)[number], number> {
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

function checkGrads(
  actual: Record<(typeof NAMES)[number], ArrayLike<number>>,
  expected: ConvBnReluGrads,
  d: GradCaseData,
  tol: Tol,
  label: string,
) {
  const scales = gradScales(d);
  const failures: string[] = [];
  for (const name of NAMES) {
    const a = actual[name], e = expected[name];
    const scale = Math.max(scales[name], 1e-12);
    const r = compareArrays(
      a,
      e,
      { atol: tol.scaledAtol * scale, rtol: tol.rtol },
      `${label} ${name}`,
    );
    if (!r.ok) failures.push(r.message);
    let diff2 = 0, ref2 = 0;
    for (let i = 0; i < e.length; i++) {
      diff2 += (a[i] - e[i]) ** 2;
      ref2 += e[i] ** 2;
    }
    const relL2 = Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), 1e-3 * scale * Math.sqrt(e.length));
    if (!(relL2 <= tol.relL2)) {
      failures.push(`${label} ${name}: rel L2 ${relL2.toExponential(3)} > ${tol.relL2}`);
    }
  }
  if (failures.length > 0) throw new Error(failures.join("\n"));
}

function attrsOf(c: GradCase, d: GradCaseData) {
  return { strides: c.strides, pad: c.pad, epsilon: d.epsilon };
}

/** Tensors of a case on the current backend (x, filter, gamma, beta, dy, z, stats). */
function caseTensors(c: GradCase, d: GradCaseData) {
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

async function readAll(ts: tf.Tensor[]): Promise<ConvBnReluGrads> {
  const out: Record<string, Float32Array> = {};
  for (let i = 0; i < NAMES.length; i++) out[NAMES[i]] = (await ts[i].data()) as Float32Array;
  return out as unknown as ConvBnReluGrads;
}

/** Gradients of sum(stockChain(x, filter, gamma, beta).y * dy) on the cpu backend. */
async function stockGradsOnCpu(c: GradCase, d: GradCaseData): Promise<ConvBnReluGrads> {
  await initTf("cpu");
  const t = caseTensors(c, d);
  const grads = tf.grads((x, filter, gamma, beta) => {
    const r = convBnReluTrainStock(
      x as tf.Tensor4D,
      filter as tf.Tensor4D,
      gamma as tf.Tensor1D,
      beta as tf.Tensor1D,
      attrsOf(c, d),
    );
    return tf.sum(tf.mul(r.y, t.dy));
  })([t.x, t.filter, t.gamma, t.beta]);
  const r = await readAll(grads);
  tf.dispose([...grads, ...Object.values(t)]);
  return r;
}

async function useGpu() {
  await initTf("webgpu");
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  setPoisonOutputs(true);
}

Deno.test(
  "ConvBnReluTrainGrad: hand-checkable identities on webgpu and cpu",
  GPU_TEST,
  async () => {
    // No ReLU clipping (beta = 10) and dy = 1: the loss is sum(gamma * xhat + beta), whose
    // gradient w.r.t. z vanishes (xhat sums to 0 over the batch), so dx = dfilter = 0, dbeta = M,
    // dgamma = sum xhat = 0. With beta = -10 every output is clipped: all gradients are 0.
    const c: GradCase = {
      n: 2,
      h: 5,
      w: 4,
      cin: 3,
      cout: 5,
      kh: 3,
      kw: 3,
      strides: [1, 1],
      pad: "same",
      seed: 7,
    };
    for (const backend of ["cpu", "webgpu"] as const) {
      for (const beta of [10, -10]) {
        if (backend === "webgpu") await useGpu();
        else await initTf("cpu");
        const d = makeCaseData(c);
        d.beta.fill(beta);
        d.dy.fill(1);
        const t = caseTensors(c, d);
        const outs = tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, t, {
          ...attrsOf(c, d),
        }) as tf.Tensor[];
        const r = await readAll(outs);
        tf.dispose([...outs, ...Object.values(t)]);
        const m = c.n * c.h * c.w;
        const zeros = (n: number) => new Float32Array(n);
        const expected: ConvBnReluGrads = {
          dx: zeros(d.x.length),
          dfilter: zeros(d.filter.length),
          dgamma: zeros(c.cout),
          dbeta: new Float32Array(c.cout).fill(beta > 0 ? m : 0),
        };
        for (const name of NAMES) {
          const res = compareArrays(r[name], expected[name], { atol: 1e-4, rtol: 1e-5 }, name);
          if (!res.ok) throw new Error(`${backend} beta=${beta}: ${res.message}`);
        }
      }
    }
    setPoisonOutputs(false);
  },
);

Deno.test(
  "ConvBnReluTrainGrad: WGSL kernels (fast and v1) match the CPU reference",
  GPU_TEST,
  async () => {
    await useGpu();
    const backend = tf.backend() as unknown as WebGPUBackend;
    await fc.assert(
      fc.asyncProperty(gradCaseArb, async (c) => {
        const d = makeCaseData(c);
        const expected = convBnReluGradRef(d, d.geometry);
        const t = caseTensors(c, d);
        const fast = tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, t, {
          ...attrsOf(c, d),
        }) as tf.Tensor[];
        const naive = convBnReluTrainGradWebGPU(backend, t, d.geometry, { naive: true })
          .map((info) => tf.engine().makeTensorFromTensorInfo(info));
        const fastR = await readAll(fast);
        const naiveR = await readAll(naive);
        tf.dispose([...fast, ...naive, ...Object.values(t)]);
        checkGrads(fastR, expected, d, KERNEL_TOL, `fast ${describeCase(c)}`);
        checkGrads(naiveR, expected, d, KERNEL_TOL, `v1 ${describeCase(c)}`);
      }),
      { seed: 20261125, numRuns: runs(30) },
    );
    setPoisonOutputs(false);
  },
);

Deno.test(
  "ConvBnReluTrainGrad: vec4 kernels (channels % 4 == 0) match the CPU reference",
  GPU_TEST,
  async () => {
    await useGpu();
    await fc.assert(
      fc.asyncProperty(vec4CaseArb, async (c) => {
        const d = makeCaseData(c);
        const expected = convBnReluGradRef(d, d.geometry);
        const t = caseTensors(c, d);
        const outs = tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, t, {
          ...attrsOf(c, d),
        }) as tf.Tensor[];
        const r = await readAll(outs);
        tf.dispose([...outs, ...Object.values(t)]);
        checkGrads(r, expected, d, KERNEL_TOL, `vec4 ${describeCase(c)}`);
      }),
      { seed: 4444, numRuns: runs(15) },
    );
    setPoisonOutputs(false);
  },
);

Deno.test(
  "ConvBnReluTrainGrad: a new batch size reuses the compiled pipelines",
  GPU_TEST,
  async () => {
    // Shapes travel as uniforms and shader keys hold compile-time facts only, so only the first
    // call compiles (seconds per shader on llvmpipe).
    await useGpu();
    const backend = tf.backend() as unknown as { pipelineCache: Record<string, unknown> };
    const pipelines = async (n: number) => {
      const c: GradCase = {
        n,
        h: 8,
        w: 8,
        cin: 8,
        cout: 8,
        kh: 3,
        kw: 3,
        strides: [1, 1],
        pad: "same",
        seed: n,
      };
      const d = makeCaseData(c);
      const t = caseTensors(c, d);
      const outs = tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, t, {
        ...attrsOf(c, d),
      }) as tf.Tensor[];
      await readAll(outs);
      tf.dispose([...outs, ...Object.values(t)]);
      return Object.keys(backend.pipelineCache).filter((k) => k.startsWith("cbr_bwd_")).sort();
    };
    const first = await pipelines(2);
    const second = await pipelines(3);
    if (first.length < 5 || JSON.stringify(second) !== JSON.stringify(first)) {
      throw new Error(`pipelines after batch 2: ${first.length}, after batch 3: ${second.length}`);
    }
    setPoisonOutputs(false);
  },
);

Deno.test("ConvBnReluTrainGrad: a mis-shaped input is refused, naming the tensor", async () => {
  await initTf("cpu");
  const c: GradCase = {
    n: 1,
    h: 4,
    w: 4,
    cin: 2,
    cout: 3,
    kh: 3,
    kw: 3,
    strides: [2, 2],
    pad: "same",
    seed: 3,
  };
  const d = makeCaseData(c);
  const t = caseTensors(c, d);
  const bad = { ...t, stats: tf.zeros([2, c.cout]) };
  try {
    throws(
      () => tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, bad, { ...attrsOf(c, d) }),
      /ConvBnReluTrainGrad: stats must have shape \[3,3\], got \[2,3\]/,
    );
  } finally {
    tf.dispose([...Object.values(t), bad.stats]);
  }
});

Deno.test("ConvBnReluTrainGrad: CPU reference matches tf.grads of the stock chain", async () => {
  await fc.assert(
    fc.asyncProperty(gradCaseArb, async (c) => {
      const d = makeCaseData(c);
      const expected = await stockGradsOnCpu(c, d);
      const ref = convBnReluGradRef(d, d.geometry);
      checkGrads(ref, expected, d, STOCK_TOL, `ref vs stock ${describeCase(c)}`);
    }),
    { seed: 11251335, numRuns: runs(30) },
  );
});

Deno.test(
  "convBnReluTrain: tf.grads on webgpu match the stock chain on cpu",
  GPU_TEST,
  async () => {
    await fc.assert(
      fc.asyncProperty(gradCaseArb, async (c) => {
        const d = makeCaseData(c);
        const expected = await stockGradsOnCpu(c, d);
        await useGpu();
        const t = caseTensors(c, d);
        const grads = tf.grads((x, filter, gamma, beta) => {
          const r = convBnReluTrain(
            x as tf.Tensor4D,
            filter as tf.Tensor4D,
            gamma as tf.Tensor1D,
            beta as tf.Tensor1D,
            attrsOf(c, d),
          );
          return tf.sum(tf.mul(r.y, t.dy));
        })([t.x, t.filter, t.gamma, t.beta]);
        const r = await readAll(grads);
        tf.dispose([...grads, ...Object.values(t)]);
        checkGrads(r, expected, d, STOCK_TOL, `fused webgpu vs stock cpu ${describeCase(c)}`);
      }),
      { seed: 5318008, numRuns: runs(12) },
    );
    setPoisonOutputs(false);
  },
);
