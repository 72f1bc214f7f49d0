// The WebGPU kernels of the conv backprops (conv_backprop.ts): the generated passes of conv/.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "../conv/geometry.ts";
import { runBackpropData, runBackpropFilter } from "../conv/passes.ts";
import { planOf, type TilePlan } from "../conv/tile_plan.ts";
import {
  CONV_BACKPROP_DATA,
  CONV_BACKPROP_FILTER,
  dataGeometry,
  filterGeometry,
} from "./conv_backprop.ts";

function webgpuKernel(
  kernelName: string,
  geometryOf: typeof dataGeometry,
  run: (
    backend: WebGPUBackend,
    dz: TensorInfo,
    other: TensorInfo,
    g: ConvGeometry,
    plan: TilePlan,
  ) => TensorInfo,
): KernelConfig {
  return {
    kernelName,
    backendName: "webgpu",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { g, dz, other } = geometryOf(inputs, attrs);
      const b = backend as unknown as WebGPUBackend;
      return run(b, dz, other, g, planOf(attrs, b));
    },
  };
}

export const convBackpropDataWebgpu = webgpuKernel(
  CONV_BACKPROP_DATA,
  dataGeometry,
  runBackpropData,
);
export const convBackpropFilterWebgpu = webgpuKernel(
  CONV_BACKPROP_FILTER,
  filterGeometry,
  runBackpropFilter,
);
