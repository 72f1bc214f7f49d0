// The WebGPU kernels of convBiasReluPool2 (conv_bias_relu_pool2.ts): the forward is the conv
// view with the biasRelu epilogue, then the pool pass; the gradient's first step is one
// multi-output pass over the pool windows (route, ReLU mask, bias sums).

import type { KernelConfig } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { UsageError } from "../../errors.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import { runConvBiasRelu } from "../conv_bias_relu/conv_bias_relu_webgpu.ts";
import { runMaxPool2 } from "../max_pool2/max_pool2_webgpu.ts";
import { inputLoadFunctions, textureLoadsApply } from "../backend/texture_loads.ts";
import {
  CONV_BIAS_RELU_POOL2,
  gradInputs,
  MAX_POOL2_RELU_BIAS_GRAD,
  POOL_GRAD_MAX_WINDOWS,
  poolGradMaxWindows,
  windowsOf,
} from "./conv_bias_relu_pool2.ts";

const CHANNEL_LANES = 4;
const WORKGROUP = 64;

class MaxPool2ReluBiasGradProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames = ["dz", "dbias"];
  readonly variableNames = ["dy", "y"];
  override readonly uniforms =
    "items : i32, groups : i32, inH : i32, inW : i32, outH : i32, outW : i32,";
  override readonly everyInvocation = true;
  override readonly vec4: boolean;
  /** dy and y through textures (texture_loads.ts). */
  private readonly textured: boolean;

  constructor(vec4: boolean, textured: boolean) {
    super();
    this.vec4 = vec4;
    this.textured = textured;
    this.shaderKey = `maxPool2ReluBiasGrad${textured ? "_tex" : ""}`;
  }

  getUserCode(): string {
    const element = this.vec4
      ? "alias VT = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias VT = f32;\nconst VW : i32 = 1;";
    return [
      element,
      inputLoadFunctions(this.variableNames, "VT", this.textured),
      wgsl("conv_bias_relu_pool2/max_pool2_relu_bias_grad.wgsl"),
    ].join("\n");
  }
}

export const maxPool2ReluBiasGradWebgpu: KernelConfig = {
  kernelName: MAX_POOL2_RELU_BIAS_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { dy, y } = gradInputs(inputs);
    const [n, h, w, c] = y.shape;
    const windows = windowsOf(y.shape);
    if (windows > poolGradMaxWindows()) {
      throw new UsageError(
        `${MAX_POOL2_RELU_BIAS_GRAD}: at most ${POOL_GRAD_MAX_WINDOWS} windows, got ${windows}`,
      );
    }
    const vec4 = c % 4 === 0;
    const groups = vec4 ? c / 4 : c;
    const i32 = (v: number) => ({ type: "int32" as const, data: [v] });
    return runMultiOutputProgram(
      backend as unknown as WebGPUBackend,
      new MaxPool2ReluBiasGradProgram(
        vec4,
        textureLoadsApply(vec4 ? 4 : 1, n * h * w * c),
      ),
      [y.shape, [c]],
      [dy, y],
      n === 0 ? 0 : Math.ceil(groups / CHANNEL_LANES) * WORKGROUP,
      [i32(windows), i32(groups), i32(h), i32(w), i32(dy.shape[1]), i32(dy.shape[2])],
    );
  },
};

export const convBiasReluPool2Webgpu: KernelConfig = {
  kernelName: CONV_BIAS_RELU_POOL2,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const b = backend as unknown as WebGPUBackend;
    const y = runConvBiasRelu(inputs, attrs, b);
    return [runMaxPool2(b, y), y];
  },
};
