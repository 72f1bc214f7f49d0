// Plain-loop CPU reference of the fused conv + batch-norm + ReLU forward (training and inference).
// Written for clarity, not speed: it is the oracle the WGSL kernels are tested against and the body
// of the `cpu` registrations of ConvBnReluTrain / ConvBnReluInfer. Sums run in float64 (JS
// numbers), results are stored as float32.
//
// Shape legend:
//   N = batch, H/W = input height/width, Ho/Wo = output height/width,
//   Cin = input channels, Cout = output channels, KH/KW = kernel height/width.
//   x      is (N, H, W, Cin)        NHWC, row-major
//   filter is (KH, KW, Cin, Cout)   Cout fastest
//   z, y   are (N, Ho, Wo, Cout)
//   stats  is (3, Cout)             rows: mean, biased variance, invStd = 1/sqrt(var + eps)

import type { NamedAttrMap } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { type ConvGeometry, forEachConvTap } from "../conv/geometry.ts";
import { CONV_BN_RELU_INFER, CONV_BN_RELU_TRAIN } from "./conv_bn_relu.ts";
import { attrsOf, geometryOf, movingOf, take } from "./conv_bn_relu_kernel_inputs.ts";

/** z = conv2d(x, filter) with tfjs `same`/`valid` padding (zeros outside the input). */
export function conv2dRef(x: Float32Array, filter: Float32Array, g: ConvGeometry): Float32Array {
  const { inC, outC } = g;
  // Float64 sums, each element's terms in tap order, then one rounding to float32.
  const acc = new Float64Array(g.batch * g.outH * g.outW * outC);
  forEachConvTap(g, (zRow, xRow, wTap) => {
    for (let ci = 0; ci < inC; ci++) {
      const xv = x[xRow + ci];
      const wRow = (wTap + ci) * outC;
      for (let co = 0; co < outC; co++) acc[zRow + co] += xv * filter[wRow + co];
    }
  });
  return Float32Array.from(acc);
}

/**
 * Per-channel batch statistics of z (rows = N*Ho*Wo, Cout columns), two-pass for accuracy:
 * returns stats (3, Cout) = [mean; biased variance; 1/sqrt(variance + eps)].
 */
export function batchStatsRef(z: Float32Array, outC: number, epsilon: number): Float32Array {
  const rows = z.length / outC;
  const stats = new Float32Array(3 * outC);
  for (let c = 0; c < outC; c++) {
    let sum = 0;
    for (let r = 0; r < rows; r++) sum += z[r * outC + c];
    const mean = sum / rows;
    let m2 = 0;
    for (let r = 0; r < rows; r++) {
      const d = z[r * outC + c] - mean;
      m2 += d * d;
    }
    const variance = m2 / rows;
    stats[c] = mean;
    stats[outC + c] = variance;
    stats[2 * outC + c] = 1 / Math.sqrt(variance + epsilon);
  }
  return stats;
}

/**
 * Running statistics (Keras): moving' = moving * m + batch * (1 - m), rounded like tfjs's
 * mul/mul/add on float32 tensors: f32(f32(moving * m) + f32(batch * f32(1 - m))).
 */
export function bnMovingAverageRef(
  moving: Float32Array,
  batch: Float32Array,
  momentum: number,
): Float32Array {
  const f = Math.fround;
  const m = f(momentum), k = f(1 - momentum);
  return moving.map((x, i) => f(f(x * m) + f(batch[i] * k)));
}

/** y = relu(z * scale[c] + shift[c]) for every row of z (rows x Cout). */
export function scaleShiftReluRef(
  z: Float32Array,
  scale: ArrayLike<number>,
  shift: ArrayLike<number>,
): Float32Array {
  const outC = scale.length;
  const y = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const c = i % outC;
    y[i] = Math.max(0, z[i] * scale[c] + shift[c]);
  }
  return y;
}

export interface TrainForwardRef {
  /** (N, Ho, Wo, Cout) = relu(gamma * (z - mean) * invStd + beta) */
  y: Float32Array;
  /** (N, Ho, Wo, Cout) = conv2d(x, filter) */
  z: Float32Array;
  /** (3, Cout): mean, biased variance, invStd */
  stats: Float32Array;
}

/** Training-mode forward: conv, batch statistics over N*Ho*Wo, normalise, scale/shift, ReLU. */
export function convBnReluTrainRef(
  x: Float32Array,
  filter: Float32Array,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  g: ConvGeometry,
  epsilon: number,
): TrainForwardRef {
  const z = conv2dRef(x, filter, g);
  const stats = batchStatsRef(z, g.outC, epsilon);
  const outC = g.outC;
  const y = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const c = i % outC;
    const normalized = (z[i] - stats[c]) * stats[2 * outC + c];
    y[i] = Math.max(0, gamma[c] * normalized + beta[c]);
  }
  return { y, z, stats };
}

/** Inference-mode forward: y = relu(conv2d(x, filter) * scale + shift), BN already folded. */
export function convBnReluInferRef(
  x: Float32Array,
  filter: Float32Array,
  scale: ArrayLike<number>,
  shift: ArrayLike<number>,
  g: ConvGeometry,
): Float32Array {
  return scaleShiftReluRef(conv2dRef(x, filter, g), scale, shift);
}

// The cpu kernels: the references above on the backend's arrays.

export const convBnReluTrainCpu = cpuKernel(CONV_BN_RELU_TRAIN, (inputs, cpu, kernelAttrs) => {
  const attrs = kernelAttrs as NamedAttrMap;
  const [x, filter, gamma, beta] = take(inputs, ["x", "filter", "gamma", "beta"]);
  const g = geometryOf(x, filter, attrs);
  const eps = attrsOf(attrs).epsilon;
  const ref = convBnReluTrainRef(
    cpuValues(cpu, x),
    cpuValues(cpu, filter),
    cpuValues(cpu, gamma),
    cpuValues(cpu, beta),
    g,
    eps,
  );
  const outShape = [g.batch, g.outH, g.outW, g.outC];
  const c = g.outC;
  const moving = movingOf(inputs, attrs);
  const updated = moving
    ? [
      bnMovingAverageRef(
        cpuValues(cpu, moving.movingMean),
        ref.stats.subarray(0, c),
        moving.momentum,
      ),
      bnMovingAverageRef(
        cpuValues(cpu, moving.movingVariance),
        ref.stats.subarray(c, 2 * c),
        moving.momentum,
      ),
    ]
    : [];
  return [
    cpu.makeTensorInfo(outShape, "float32", ref.y),
    cpu.makeTensorInfo(outShape, "float32", ref.z),
    cpu.makeTensorInfo([3, c], "float32", ref.stats),
    ...updated.map((v) => cpu.makeTensorInfo([c], "float32", v)),
  ];
});

export const convBnReluInferCpu = cpuKernel(CONV_BN_RELU_INFER, (inputs, cpu, attrs) => {
  const [x, filter, scale, shift] = take(inputs, ["x", "filter", "scale", "shift"]);
  const g = geometryOf(x, filter, attrs as NamedAttrMap);
  const y = convBnReluInferRef(
    cpuValues(cpu, x),
    cpuValues(cpu, filter),
    cpuValues(cpu, scale),
    cpuValues(cpu, shift),
    g,
  );
  return cpu.makeTensorInfo([g.batch, g.outH, g.outW, g.outC], "float32", y);
});
