// Plain-loop CPU reference of the fused conv + batch-norm (training mode) + ReLU backward.
// Written for clarity, not speed: it is the oracle the WGSL backward kernels are tested against
// and the body of the `cpu` registration of ConvBnReluTrainGrad. Sums run in float64 (JS
// numbers), results are stored as float32.
//
// Shape legend:
//   N = batch, H/W = input height/width, Ho/Wo = output height/width, M = N*Ho*Wo,
//   Cin = input channels, Cout = output channels, KH/KW = kernel height/width.
//   x      is (N, H, W, Cin)        NHWC, row-major          -> dx has the same shape
//   filter is (KH, KW, Cin, Cout)   Cout fastest             -> dfilter has the same shape
//   dy, z  are (N, Ho, Wo, Cout)    dy = dLoss/dy, z = conv2d(x, filter) before normalisation
//   stats  is (3, Cout)             rows: mean, biased variance, invStd = 1/sqrt(var + eps)
//   gamma, beta are (Cout)          -> dgamma, dbeta have the same shape
//
// Math (full training-mode batch norm: mean and variance depend on z, so on x and filter):
//   xhat = (z - mean) * invStd
//   g    = dy * (gamma * xhat + beta > 0)                     ReLU mask
//   dbeta  = sum_M g,   dgamma = sum_M g * xhat
//   dz   = gamma * invStd / M * (M * g - dbeta - xhat * dgamma)
//   dx   = conv2d backprop-input of dz (transposed conv with the same stride and padding; input
//          pixels that no output touches get 0),  dfilter = conv2d backprop-filter of (x, dz).

import type { KernelConfig, NamedAttrMap } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { type ConvGeometry, forEachConvTap } from "../conv/geometry.ts";
import {
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  CONV_BN_RELU_TRAIN_GRAD,
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
  gradKernelAttrs,
} from "./conv_bn_relu.ts";
import type { ConvBnReluGradTensors } from "./conv_bn_relu_bwd.ts";
import { type GradInputs, validateGradInputs } from "./conv_bn_relu_kernel_inputs.ts";

export interface ConvBnReluGradInputs {
  dy: ArrayLike<number>;
  x: ArrayLike<number>;
  filter: ArrayLike<number>;
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  z: ArrayLike<number>;
  stats: ArrayLike<number>;
}

export interface ConvBnReluGrads {
  dx: Float32Array;
  dfilter: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
}

/** dz (N, Ho, Wo, Cout) plus the two per-channel sums of the batch-norm backward. */
export function bnReluBackwardRef(
  dy: ArrayLike<number>,
  z: ArrayLike<number>,
  stats: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
): { dz: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const outC = gamma.length;
  const rows = z.length / outC; // M
  const xhat = (i: number, c: number) => (z[i] - stats[c]) * stats[2 * outC + c];
  const masked = (i: number, c: number) => gamma[c] * xhat(i, c) + beta[c] > 0 ? dy[i] : 0;
  const dbeta = new Float64Array(outC);
  const dgamma = new Float64Array(outC);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < outC; c++) {
      const i = r * outC + c;
      const g = masked(i, c);
      dbeta[c] += g;
      dgamma[c] += g * xhat(i, c);
    }
  }
  const dz = new Float64Array(z.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < outC; c++) {
      const i = r * outC + c;
      const k = gamma[c] * stats[2 * outC + c] / rows;
      dz[i] = k * (rows * masked(i, c) - dbeta[c] - xhat(i, c) * dgamma[c]);
    }
  }
  return { dz, dgamma, dbeta };
}

/**
 * Both convolution backprops of dz (N, Ho, Wo, Cout), float64 sums: dx = backprop-input (needs
 * the filter), dfilter = backprop-filter (needs x). Pass null to skip one.
 */
export function convBackpropRef(
  dz: ArrayLike<number>,
  x: ArrayLike<number> | null,
  filter: ArrayLike<number> | null,
  g: ConvGeometry,
): { dx: Float64Array; dfilter: Float64Array } {
  const { batch, inH, inW, inC, outC, kH, kW } = g;
  const dx = new Float64Array(filter ? batch * inH * inW * inC : 0);
  const dfilter = new Float64Array(x ? kH * kW * inC * outC : 0);
  // Scatter form of both convolution backprops: every (output pixel, tap) pair that the forward
  // read from a real input pixel sends dz back to it (padding taps are skipped, as the forward
  // skipped them), so untouched input pixels keep dx = 0.
  forEachConvTap(g, (zRow, xRow, wTap) => {
    for (let ci = 0; ci < inC; ci++) {
      const wRow = (wTap + ci) * outC;
      if (filter) {
        let acc = 0;
        for (let co = 0; co < outC; co++) acc += dz[zRow + co] * filter[wRow + co];
        dx[xRow + ci] += acc;
      }
      if (x) {
        const xv = x[xRow + ci];
        for (let co = 0; co < outC; co++) dfilter[wRow + co] += xv * dz[zRow + co];
      }
    }
  });
  return { dx, dfilter };
}

/** All four gradients of ConvBnReluTrain's `y` output, given dy = dLoss/dy. */
export function convBnReluGradRef(inp: ConvBnReluGradInputs, g: ConvGeometry): ConvBnReluGrads {
  const { dz, dgamma, dbeta } = bnReluBackwardRef(inp.dy, inp.z, inp.stats, inp.gamma, inp.beta);
  const { dx, dfilter } = convBackpropRef(dz, inp.x, inp.filter, g);
  return {
    dx: Float32Array.from(dx),
    dfilter: Float32Array.from(dfilter),
    dgamma: Float32Array.from(dgamma),
    dbeta: Float32Array.from(dbeta),
  };
}

// The backward cpu kernels: the references above on the backend's arrays.

type InputValues = (name: keyof ConvBnReluGradTensors) => ArrayLike<number>;

/** A backward kernel on cpu: the inputs checked, then `ref`'s [shape, values] outputs. */
function gradCpu(
  kernelName: string,
  ref: (values: InputValues, ins: GradInputs, g: ConvGeometry) => [number[], ArrayLike<number>][],
): KernelConfig {
  return cpuKernel(kernelName, (inputs, cpu, attrs) => {
    const ins = inputs as unknown as GradInputs;
    const g = validateGradInputs(ins, gradKernelAttrs(attrs as NamedAttrMap));
    const values: InputValues = (name) => cpuValues(cpu, ins[name]);
    return ref(values, ins, g).map(([shape, v]) =>
      cpu.makeTensorInfo([...shape], "float32", Float32Array.from(v))
    );
  });
}

/** CPU reference of the parameter gradients: dz (BN + ReLU backward), then dfilter from it. */
function paramGradsRef(values: InputValues, g: ConvGeometry) {
  const bn = bnReluBackwardRef(
    values("dy"),
    values("z"),
    values("stats"),
    values("gamma"),
    values("beta"),
  );
  const { dfilter } = convBackpropRef(bn.dz, values("x"), null, g);
  return { ...bn, dfilter };
}

export const convBnReluTrainGradCpu = gradCpu(
  CONV_BN_RELU_TRAIN_GRAD,
  (values, ins, g) => {
    const r = convBnReluGradRef({
      dy: values("dy"),
      x: values("x"),
      filter: values("filter"),
      gamma: values("gamma"),
      beta: values("beta"),
      z: values("z"),
      stats: values("stats"),
    }, g);
    return [
      [ins.x.shape, r.dx],
      [ins.filter.shape, r.dfilter],
      [ins.gamma.shape, r.dgamma],
      [ins.beta.shape, r.dbeta],
    ];
  },
);

export const convBnReluParamGradsCpu = gradCpu(
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
  (values, ins, g) => {
    const r = paramGradsRef(values, g);
    return [
      [ins.dy.shape, r.dz],
      [ins.filter.shape, r.dfilter],
      [ins.gamma.shape, r.dgamma],
      [ins.beta.shape, r.dbeta],
    ];
  },
);

export const convBnReluFilterGradsCpu = gradCpu(
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  (values, ins, g) => {
    const r = paramGradsRef(values, g);
    return [[ins.filter.shape, r.dfilter], [ins.gamma.shape, r.dgamma], [ins.beta.shape, r.dbeta]];
  },
);
