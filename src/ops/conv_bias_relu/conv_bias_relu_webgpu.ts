// The WebGPU kernel of convBiasRelu (conv_bias_relu.ts): the generated forward view with the
// biasRelu epilogue.

import type { KernelConfig } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { runConvForward } from "../conv/passes.ts";
import { planOf } from "../conv/tile_plan.ts";
import { CONV_BIAS_RELU, geometryOf } from "./conv_bias_relu.ts";

export const convBiasReluWebgpu: KernelConfig = {
  kernelName: CONV_BIAS_RELU,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { g, x, filter, bias } = geometryOf(inputs, attrs);
    const b = backend as unknown as WebGPUBackend;
    return runConvForward(b, x, filter, g, "biasRelu", planOf(attrs, b), [bias]);
  },
};
