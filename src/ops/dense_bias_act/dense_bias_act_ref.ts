// Plain-loop CPU reference of the dense + bias + activation op (forward and both matrix
// gradients): the oracle the WebGPU kernels are tested against and the body of the op's `cpu`
// registrations. Row-major float32 in and out, sums in float64.

import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import * as op from "./dense_bias_act.ts";

export type DenseActivation = "relu" | "linear";

/** y = act(x · kernel + bias): x (n, k), kernel (k, c), bias (c) -> (n, c). */
export function denseBiasActRef(
  x: ArrayLike<number>,
  kernel: ArrayLike<number>,
  bias: ArrayLike<number>,
  n: number,
  k: number,
  c: number,
  activation: DenseActivation,
): Float32Array {
  const y = new Float32Array(n * c);
  const row = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) row[j] = bias[j];
    for (let p = 0; p < k; p++) {
      const a = x[i * k + p];
      if (a === 0) continue;
      for (let j = 0; j < c; j++) row[j] += a * kernel[p * c + j];
    }
    for (let j = 0; j < c; j++) y[i * c + j] = activation === "relu" ? Math.max(row[j], 0) : row[j];
  }
  return y;
}

/** dx = dz · kernelᵀ: dz (n, c), kernel (k, c) -> (n, k). */
export function denseBackpropInputRef(
  dz: ArrayLike<number>,
  kernel: ArrayLike<number>,
  n: number,
  k: number,
  c: number,
): Float32Array {
  const dx = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += dz[i * c + j] * kernel[p * c + j];
      dx[i * k + p] = s;
    }
  }
  return dx;
}

/** dkernel = xᵀ · dz: x (n, k), dz (n, c) -> (k, c). */
export function denseBackpropKernelRef(
  dz: ArrayLike<number>,
  x: ArrayLike<number>,
  n: number,
  k: number,
  c: number,
): Float32Array {
  const acc = new Float64Array(k * c);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      const a = x[i * k + p];
      if (a === 0) continue;
      for (let j = 0; j < c; j++) acc[p * c + j] += a * dz[i * c + j];
    }
  }
  return Float32Array.from(acc);
}

/** dz, dkernel, dbias and dx of sum(y * dy), y the forward's output (ReLU mask: y > 0). */
export function denseBiasActGradRef(
  dy: ArrayLike<number>,
  y: ArrayLike<number>,
  x: ArrayLike<number>,
  kernel: ArrayLike<number>,
  n: number,
  k: number,
  c: number,
  activation: DenseActivation,
): { dx: Float32Array; dkernel: Float32Array; dbias: Float32Array } {
  const dz = Float32Array.from(
    { length: n * c },
    (_, i) => (activation === "linear" || y[i] > 0 ? dy[i] : 0),
  );
  const dbias = new Float64Array(c);
  for (let i = 0; i < dz.length; i++) dbias[i % c] += dz[i];
  return {
    dx: denseBackpropInputRef(dz, kernel, n, k, c),
    dkernel: denseBackpropKernelRef(dz, x, n, k, c),
    dbias: Float32Array.from(dbias),
  };
}

// The cpu kernels: the references above.

export const denseBiasActCpu = cpuKernel(op.DENSE_BIAS_ACT, (inputs, cpu, attrs) => {
  const { x, kernel, bias, n, k, c } = op.forwardSizes(inputs);
  const v = (t: TensorInfo) => cpuValues(cpu, t);
  const activation = op.activationOf(attrs as NamedAttrMap);
  const y = denseBiasActRef(v(x), v(kernel), v(bias), n, k, c, activation);
  return cpu.makeTensorInfo([n, c], "float32", y);
});

export const denseBackpropInputCpu = cpuKernel(op.DENSE_BACKPROP_INPUT, (inputs, cpu) => {
  const { dz, other: kernel, n, k, c } = op.inputGradSizes(inputs);
  const dx = denseBackpropInputRef(cpuValues(cpu, dz), cpuValues(cpu, kernel), n, k, c);
  return cpu.makeTensorInfo([n, k], "float32", dx);
});

export const denseBackpropKernelCpu = cpuKernel(op.DENSE_BACKPROP_KERNEL, (inputs, cpu) => {
  const { dz, other: x, n, k, c } = op.kernelGradSizes(inputs);
  const dw = denseBackpropKernelRef(cpuValues(cpu, dz), cpuValues(cpu, x), n, k, c);
  return cpu.makeTensorInfo([k, c], "float32", dw);
});
