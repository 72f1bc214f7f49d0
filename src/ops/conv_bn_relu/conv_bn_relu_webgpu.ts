// The WebGPU kernels of the fused conv + BN + ReLU op (conv_bn_relu.ts): the forward passes of
// conv_bn_relu_fwd.ts (training, inference) and the backward passes of conv_bn_relu_bwd.ts.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "../conv/geometry.ts";
import { planOf, type TilePlan } from "../conv/tile_plan.ts";
import {
  CONV_BN_RELU_INFER,
  CONV_BN_RELU_TRAIN,
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  CONV_BN_RELU_TRAIN_GRAD,
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
  gradKernelAttrs,
} from "./conv_bn_relu.ts";
import { runConvBnReluInfer, runConvBnReluTrain } from "./conv_bn_relu_fwd.ts";
import {
  convBnReluFilterGradsWebGPU,
  convBnReluParamGradsWebGPU,
  convBnReluTrainGradWebGPU,
} from "./conv_bn_relu_bwd.ts";
import {
  attrsOf,
  geometryOf,
  type GradInputs,
  movingOf,
  take,
  validateGradInputs,
} from "./conv_bn_relu_kernel_inputs.ts";

export const convBnReluTrainWebgpu: KernelConfig = {
  kernelName: CONV_BN_RELU_TRAIN,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const [x, filter, gamma, beta] = take(inputs, ["x", "filter", "gamma", "beta"]);
    const g = geometryOf(x, filter, attrs);
    const eps = attrsOf(attrs).epsilon;
    const moving = movingOf(inputs, attrs);
    const b = backend as WebGPUBackend;
    return runConvBnReluTrain(b, x, filter, gamma, beta, g, planOf(attrs, b), eps, moving);
  },
};

export const convBnReluInferWebgpu: KernelConfig = {
  kernelName: CONV_BN_RELU_INFER,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const [x, filter, scale, shift] = take(inputs, ["x", "filter", "scale", "shift"]);
    const g = geometryOf(x, filter, attrs);
    const b = backend as WebGPUBackend;
    return runConvBnReluInfer(b, x, filter, scale, shift, g, planOf(attrs, b));
  },
};

/** A backward kernel on webgpu: the inputs checked, then the passes of conv_bn_relu_bwd.ts. */
function gradWebgpu(
  kernelName: string,
  run: (backend: WebGPUBackend, ins: GradInputs, g: ConvGeometry, plan: TilePlan) => TensorInfo[],
): KernelConfig {
  return {
    kernelName,
    backendName: "webgpu",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const ins = inputs as unknown as GradInputs;
      const g = validateGradInputs(ins, gradKernelAttrs(attrs));
      const b = backend as unknown as WebGPUBackend;
      return run(b, ins, g, planOf(attrs, b));
    },
  };
}

export const convBnReluTrainGradWebgpu = gradWebgpu(
  CONV_BN_RELU_TRAIN_GRAD,
  convBnReluTrainGradWebGPU,
);
export const convBnReluParamGradsWebgpu = gradWebgpu(
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
  convBnReluParamGradsWebGPU,
);
export const convBnReluFilterGradsWebgpu = gradWebgpu(
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  convBnReluFilterGradsWebGPU,
);
