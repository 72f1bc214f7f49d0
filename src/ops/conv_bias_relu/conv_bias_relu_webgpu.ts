// The WebGPU kernel of convBiasRelu (conv_bias_relu.ts): the generated forward view with the
// biasRelu epilogue.

import type {
  KernelConfig,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { runConvForward } from "../conv/passes.ts";
import { planOf } from "../conv/tile_plan.ts";
import { CONV_BIAS_RELU, geometryOf } from "./conv_bias_relu.ts";

/** y = relu(conv2d(x, filter) + bias) of the op's inputs (also the pool2 variant's first stage). */
export function runConvBiasRelu(
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap | undefined,
  backend: WebGPUBackend,
): TensorInfo {
  const { g, x, filter, bias } = geometryOf(inputs, attrs);
  return runConvForward(backend, x, filter, g, "biasRelu", planOf(attrs, backend), [bias]);
}

export const convBiasReluWebgpu: KernelConfig = {
  kernelName: CONV_BIAS_RELU,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) =>
    runConvBiasRelu(inputs, attrs, backend as unknown as WebGPUBackend),
};
