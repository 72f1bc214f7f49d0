// The cpu kernels of the conv backprops (conv_backprop.ts): the float64 reference
// (convBackpropRef, shared with the conv + BN + ReLU gradient's reference).

import type { KernelConfig, NamedAttrMap } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import type { ConvGeometry } from "../conv/geometry.ts";
import { convBackpropRef } from "../conv_bn_relu/conv_bn_relu_grad_ref.ts";
import {
  CONV_BACKPROP_DATA,
  CONV_BACKPROP_FILTER,
  dataGeometry,
  filterGeometry,
} from "./conv_backprop.ts";

function cpuRefKernel(
  kernelName: string,
  geometryOf: typeof dataGeometry,
  ref: (dz: ArrayLike<number>, other: ArrayLike<number>, g: ConvGeometry) => {
    shape: number[];
    values: ArrayLike<number>;
  },
): KernelConfig {
  return cpuKernel(kernelName, (inputs, cpu, attrs) => {
    const { g, dz, other } = geometryOf(inputs, attrs as NamedAttrMap);
    const out = ref(cpuValues(cpu, dz), cpuValues(cpu, other), g);
    return cpu.makeTensorInfo(out.shape, "float32", Float32Array.from(out.values));
  });
}

export const convBackpropDataCpu = cpuRefKernel(
  CONV_BACKPROP_DATA,
  dataGeometry,
  (dz, filter, g) => ({
    shape: [g.batch, g.inH, g.inW, g.inC],
    values: convBackpropRef(dz, null, filter, g).dx,
  }),
);

export const convBackpropFilterCpu = cpuRefKernel(
  CONV_BACKPROP_FILTER,
  filterGeometry,
  (dz, x, g) => ({
    shape: [g.kH, g.kW, g.inC, g.outC],
    values: convBackpropRef(dz, x, null, g).dfilter,
  }),
);
