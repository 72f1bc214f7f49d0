// Float64 host reference of conv2d + training-mode batch norm + ReLU, forward and backward, for
// the product-scale tests. Independent of src/ops/*_ref.ts (which backs the op's cpu kernel):
// two-pass statistics (mean, then the sum of squared deviations) instead of chunked sums, and the
// backward written in gather form (dx) and as per-tap outer products (dfilter). Loops keep the
// channel axis innermost and contiguous, so a 32->32 layer at batch 128 on 28x28 (0.9 GMAC per
// pass) takes seconds, where the tfjs CPU backend takes much longer.
//
// The conv loops walk the taps with the references' geometry helper (forEachConvTap,
// src/ops/conv/geometry.ts), so they read like conv_bn_relu_ref.ts's. Deliberate: only the
// geometry is shared; the arithmetic here is its own (float64 throughout, abs-sum terms for the
// tolerances), and merging it with the reference would make the oracle check the op against itself.
//
// Its test data generator, uniformArray (xorshift32), is the one seeded generator outside
// src/random.ts, on purpose: the oracle's inputs come from code the product does not run.
//
// Layouts as the op: x (N, H, W, Cin), filter (KH, KW, Cin, Cout), z/y/dy (N, Ho, Wo, Cout).

import { type ConvGeometry, forEachConvTap } from "../../src/ops/conv/geometry.ts";

export interface F64Forward {
  z: Float64Array;
  mean: Float64Array;
  /** Biased variance over M = N·Ho·Wo. */
  variance: Float64Array;
  y: Float64Array;
  /** Pre-activation gamma·xhat + beta (its sign is the ReLU mask). */
  pre: Float64Array;
}

export interface F64Grads {
  dx: Float64Array;
  dfilter: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
  /** Per element, the sum of |terms| behind each gradient (for conditioning-aware tolerances). */
  abs: { dx: Float64Array; dfilter: Float64Array; dgamma: Float64Array; dbeta: Float64Array };
}

/** z = conv2d(x, filter) in float64. */
export function conv2dF64(x: ArrayLike<number>, filter: ArrayLike<number>, g: ConvGeometry) {
  const { inC, outC } = g;
  const z = new Float64Array(g.batch * g.outH * g.outW * outC);
  forEachConvTap(g, (zRow, xRow, wTap) => {
    for (let ci = 0; ci < inC; ci++) {
      const xv = x[xRow + ci];
      if (xv === 0) continue;
      const wRow = (wTap + ci) * outC;
      for (let co = 0; co < outC; co++) z[zRow + co] += xv * filter[wRow + co];
    }
  });
  return z;
}

/** Two-pass biased batch statistics per channel of an (M, C) row-major array. */
export function batchStatsF64(z: ArrayLike<number>, outC: number) {
  const rows = z.length / outC;
  const mean = new Float64Array(outC);
  const variance = new Float64Array(outC);
  for (let r = 0; r < rows; r++) for (let c = 0; c < outC; c++) mean[c] += z[r * outC + c];
  for (let c = 0; c < outC; c++) mean[c] /= rows;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < outC; c++) variance[c] += (z[r * outC + c] - mean[c]) ** 2;
  }
  for (let c = 0; c < outC; c++) variance[c] /= rows;
  return { mean, variance };
}

export function convBnReluForwardF64(
  x: ArrayLike<number>,
  filter: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  g: ConvGeometry,
  epsilon: number,
): F64Forward {
  const z = conv2dF64(x, filter, g);
  const { mean, variance } = batchStatsF64(z, g.outC);
  const y = new Float64Array(z.length);
  const pre = new Float64Array(z.length);
  const outC = g.outC;
  for (let i = 0; i < z.length; i++) {
    const c = i % outC;
    const v = gamma[c] * (z[i] - mean[c]) / Math.sqrt(variance[c] + epsilon) + beta[c];
    pre[i] = v;
    y[i] = v > 0 ? v : 0;
  }
  return { z, mean, variance, y, pre };
}

/** y = relu(z * scale + shift) with scale = gamma / sqrt(movingVar + eps), from float64 z. */
export function convBnReluInferF64(
  z: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  movingMean: ArrayLike<number>,
  movingVariance: ArrayLike<number>,
  epsilon: number,
): Float64Array {
  const outC = gamma.length;
  const y = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const c = i % outC;
    const v = gamma[c] * (z[i] - movingMean[c]) / Math.sqrt(movingVariance[c] + epsilon) +
      beta[c];
    y[i] = v > 0 ? v : 0;
  }
  return y;
}

/**
 * All four gradients of sum(y * dy) (training-mode batch norm: statistics depend on z). `mask`
 * overrides the ReLU mask (1 = passes): a float32 op and this reference can disagree on the sign
 * of a pre-activation within rounding of 0, and one such element moves 9·Cin entries of dx.
 */
export function convBnReluGradsF64(
  x: ArrayLike<number>,
  filter: ArrayLike<number>,
  gamma: ArrayLike<number>,
  _beta: ArrayLike<number>, // enters through fwd (the ReLU mask)
  dy: ArrayLike<number>,
  fwd: F64Forward,
  g: ConvGeometry,
  epsilon: number,
  mask?: Uint8Array,
): F64Grads {
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW } = g;
  const rows = batch * outH * outW;
  const invStd = fwd.variance.map((v) => 1 / Math.sqrt(v + epsilon));
  const xhat = new Float64Array(fwd.z.length);
  const gm = new Float64Array(fwd.z.length); // dy masked by ReLU
  const dbeta = new Float64Array(outC);
  const dgamma = new Float64Array(outC);
  const dbetaAbs = new Float64Array(outC);
  const dgammaAbs = new Float64Array(outC);
  for (let i = 0; i < fwd.z.length; i++) {
    const c = i % outC;
    xhat[i] = (fwd.z[i] - fwd.mean[c]) * invStd[c];
    gm[i] = (mask ? mask[i] === 1 : fwd.y[i] > 0) ? dy[i] : 0;
    dbeta[c] += gm[i];
    dgamma[c] += gm[i] * xhat[i];
    dbetaAbs[c] += Math.abs(gm[i]);
    dgammaAbs[c] += Math.abs(gm[i] * xhat[i]);
  }
  const dz = new Float64Array(fwd.z.length);
  const dzAbs = new Float64Array(fwd.z.length);
  for (let i = 0; i < dz.length; i++) {
    const c = i % outC;
    const k = Math.abs(gamma[c] * invStd[c]);
    dz[i] = gamma[c] * invStd[c] * (gm[i] - dbeta[c] / rows - xhat[i] * dgamma[c] / rows);
    dzAbs[i] = k * (Math.abs(gm[i]) + dbetaAbs[c] / rows + Math.abs(xhat[i]) * dgammaAbs[c] / rows);
  }
  const dx = new Float64Array(batch * inH * inW * inC);
  const dfilter = new Float64Array(kH * kW * inC * outC);
  const dxAbs = new Float64Array(dx.length);
  const dfilterAbs = new Float64Array(dfilter.length);
  forEachConvTap(g, (zRow, xRow, wTap) => {
    for (let ci = 0; ci < inC; ci++) {
      const wRow = (wTap + ci) * outC;
      const xv = x[xRow + ci];
      const xa = Math.abs(xv);
      let acc = 0, accAbs = 0;
      for (let co = 0; co < outC; co++) {
        const d = dz[zRow + co];
        const da = dzAbs[zRow + co];
        acc += d * filter[wRow + co];
        accAbs += da * Math.abs(filter[wRow + co]);
        dfilter[wRow + co] += xv * d;
        dfilterAbs[wRow + co] += xa * da;
      }
      dx[xRow + ci] += acc;
      dxAbs[xRow + ci] += accAbs;
    }
  });
  return {
    dx,
    dfilter,
    dgamma,
    dbeta,
    abs: { dx: dxAbs, dfilter: dfilterAbs, dgamma: dgammaAbs, dbeta: dbetaAbs },
  };
}

/** Seeded uniform floats in [lo, hi) (xorshift32, see the header). */
export function uniformArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  }
  return out;
}
