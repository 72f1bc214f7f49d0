// Plain-loop CPU reference of the conv + bias + ReLU op (forward and all three gradients): the
// oracle the WebGPU kernels are tested against and the body of the op's `cpu` registration.
// Sums in float64 (conv2dRef accumulates in JS numbers, convBackpropRef in Float64Array).

import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import type { ConvGeometry } from "../conv/geometry.ts";
import { CONV_BIAS_RELU, geometryOf } from "./conv_bias_relu.ts";
import { conv2dRef } from "../conv_bn_relu/conv_bn_relu_ref.ts";
import { convBackpropRef } from "../conv_bn_relu/conv_bn_relu_grad_ref.ts";

/** y = relu(conv2d(x, filter) + bias[c]), (N, Ho, Wo, Cout). */
export function convBiasReluRef(
  x: Float32Array,
  filter: Float32Array,
  bias: ArrayLike<number>,
  g: ConvGeometry,
): Float32Array {
  const z = conv2dRef(x, filter, g);
  return z.map((v, i) => Math.max(v + bias[i % g.outC], 0));
}

/** dx, dfilter, dbias of sum(y * dy), y the forward's output (its ReLU mask is y > 0). */
export function convBiasReluGradRef(
  dy: ArrayLike<number>,
  y: ArrayLike<number>,
  x: Float32Array,
  filter: Float32Array,
  g: ConvGeometry,
): { dx: Float32Array; dfilter: Float32Array; dbias: Float32Array } {
  const dz = Float64Array.from({ length: dy.length }, (_, i) => (y[i] > 0 ? dy[i] : 0));
  const dbias = new Float64Array(g.outC);
  for (let i = 0; i < dz.length; i++) dbias[i % g.outC] += dz[i];
  const { dx, dfilter } = convBackpropRef(dz, x, filter, g);
  return {
    dx: Float32Array.from(dx),
    dfilter: Float32Array.from(dfilter),
    dbias: Float32Array.from(dbias),
  };
}

/** The cpu kernel: the reference above. */
export const convBiasReluCpu = cpuKernel(CONV_BIAS_RELU, (inputs, cpu, attrs) => {
  const { g, x, filter, bias } = geometryOf(inputs, attrs as NamedAttrMap);
  const values = (t: TensorInfo) => Float32Array.from(cpuValues(cpu, t));
  const y = convBiasReluRef(values(x), values(filter), values(bias), g);
  return cpu.makeTensorInfo([g.batch, g.outH, g.outW, g.outC], "float32", y);
});
