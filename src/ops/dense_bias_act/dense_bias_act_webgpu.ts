// The WebGPU kernels of the dense layer (dense_bias_act.ts): the generated conv views on 1x1
// geometry (x as [N, 1, 1, K], the kernel as a 1x1 filter).

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type ConvGeometry, convGeometry } from "../conv/geometry.ts";
import { runBackpropData, runBackpropFilter, runConvForward } from "../conv/passes.ts";
import { convBackpropFilter } from "../conv/gemm.ts";
import type { TileConfig } from "../conv/tiling.ts";
import { planOf, tileConfigFor } from "../conv/tile_plan.ts";
import { useNaiveKernels } from "../../flags.ts";
import {
  activationOf,
  DENSE_BACKPROP_INPUT,
  DENSE_BACKPROP_KERNEL,
  DENSE_BIAS_ACT,
  forwardSizes,
  inputGradSizes,
  kernelGradSizes,
} from "./dense_bias_act.ts";

/** The conv geometry of the dense layer: a 1x1 valid conv over [N, 1, 1, K] -> [N, 1, 1, C]. */
function denseGeometry(n: number, k: number, c: number): ConvGeometry {
  return convGeometry([n, 1, 1, k], [1, 1, k, c], 1, "valid");
}

function as4d(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** The resolved backward-filter config with one reduction slice (header: "Why one slice"). */
function oneSlice(config: TileConfig): TileConfig {
  return { ...config, splitK: 1 };
}

export const denseBiasActWebgpu: KernelConfig = {
  kernelName: DENSE_BIAS_ACT,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { x, kernel, bias, n, k, c } = forwardSizes(inputs);
    const epilogue = activationOf(attrs) === "relu" ? "biasRelu" : "bias";
    const g = denseGeometry(n, k, c);
    const b = backend as unknown as WebGPUBackend;
    const y = runConvForward(
      b,
      as4d(x, [n, 1, 1, k]),
      as4d(kernel, [1, 1, k, c]),
      g,
      epilogue,
      planOf(attrs, b),
      [bias],
    );
    return as4d(y, [n, c]);
  },
};

export const denseBackpropInputWebgpu: KernelConfig = {
  kernelName: DENSE_BACKPROP_INPUT,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { dz, other: kernel, n, k, c } = inputGradSizes(inputs);
    const b = backend as unknown as WebGPUBackend;
    const dx = runBackpropData(
      b,
      as4d(dz, [n, 1, 1, c]),
      as4d(kernel, [1, 1, k, c]),
      denseGeometry(n, k, c),
      planOf(attrs, b),
    );
    return as4d(dx, [n, k]);
  },
};

export const denseBackpropKernelWebgpu: KernelConfig = {
  kernelName: DENSE_BACKPROP_KERNEL,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { dz, other: x, n, k, c } = kernelGradSizes(inputs);
    const g = denseGeometry(n, k, c);
    const b = backend as unknown as WebGPUBackend;
    const plan = planOf(attrs, b);
    const dz4 = as4d(dz, [n, 1, 1, c]);
    const x4 = as4d(x, [n, 1, 1, k]);
    const dw = useNaiveKernels()
      ? runBackpropFilter(b, dz4, x4, g, plan)
      : convBackpropFilter(b, dz4, x4, g, oneSlice(tileConfigFor(plan, "bwdFilter", g, b)));
    return as4d(dw, [k, c]);
  },
};
