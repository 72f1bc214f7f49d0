// The WebGPU kernels of the conv backprops (conv_backprop.ts): the generated passes of conv/.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "../conv/geometry.ts";
import { runBackpropData, runBackpropFilter } from "../conv/passes.ts";
import {
  CONV_BACKPROP_DATA,
  CONV_BACKPROP_FILTER,
  dataGeometry,
  filterGeometry,
} from "./conv_backprop.ts";

function webgpuKernel(
  kernelName: string,
  geometryOf: typeof dataGeometry,
  run: (backend: WebGPUBackend, dz: TensorInfo, other: TensorInfo, g: ConvGeometry) => TensorInfo,
): KernelConfig {
  return {
    kernelName,
    backendName: "webgpu",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { g, dz, other } = geometryOf(inputs, attrs);
      return run(backend as unknown as WebGPUBackend, dz, other, g);
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
