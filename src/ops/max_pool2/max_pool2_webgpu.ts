// The WebGPU kernels of maxPool2 (max_pool2.ts): one flat pass each way, vec4 when C % 4 == 0.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { type Dispatch, runProgram, splitGroups } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import type { DropoutAttrs } from "../dropout/dropout.ts";
import { dropoutUniforms } from "../dropout/dropout_webgpu.ts";
import { dropoutOf, MAX_POOL2, MAX_POOL2_DROPOUT, MAX_POOL2_GRAD } from "./max_pool2.ts";
import { maxPool2Shape } from "./max_pool2_ref.ts";
import { inputLoadFunctions, textureLoadsApply } from "../backend/texture_loads.ts";

/**
 * A flat program over `invocations` (one per output element or window, in units of VW
 * channels), reading `variableNames` as VT = vec4<f32> when C % 4 == 0, else f32, through
 * `load_NAME(i)` (texture_loads.ts: from textures where `textured`).
 */
abstract class MaxPool2Program implements WebGPUProgram {
  outputShape: number[];
  abstract shaderKey: string;
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: Dispatch;
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputComponent: number;
  variableComponents: number[];
  protected readonly width: number;
  protected readonly textured: boolean;

  constructor(
    outputShape: number[],
    channels: number,
    inputs: number,
    invocations: number,
    inputElements: number,
  ) {
    this.outputShape = outputShape;
    this.width = channels % 4 === 0 ? 4 : 1;
    this.textured = textureLoadsApply(this.width, inputElements);
    this.outputComponent = this.width;
    this.variableComponents = new Array(inputs).fill(this.width);
    const [gx, gz] = splitGroups(Math.ceil(invocations / this.width / 64));
    this.dispatch = [gx, 1, gz];
  }

  abstract getUserCode(): string;
  abstract variableNames: string[];
  uniforms?: string;

  /** The dropout variant: the dropoutKey input (one int32, read as a scalar) and its uniforms. */
  protected withDropoutKey(uniforms: string) {
    this.variableNames = [...this.variableNames, "dropoutKey"];
    this.variableComponents = [...this.variableComponents, 1];
    this.uniforms = uniforms;
  }

  /**
   * The kernel after `alias VT`, `VW` and `fn poolScale(i) -> VT`, the dropout multipliers of
   * pooled element group i (dropout_mask.wgsl) when `dropout`, else 1, and any `parts`.
   */
  protected source(kernel: string, dropout: boolean, parts: string[] = []): string {
    const vt = this.width === 4 ? "vec4<f32>" : "f32";
    const m = (k: number) => `dropoutMultiplier(${this.width} * i + ${k})`;
    const scale = !dropout
      ? "fn poolScale(i : i32) -> VT {\n  return VT(1.0);\n}"
      : wgsl("wgsl/dropout_mask.wgsl") +
        `\nfn poolScale(i : i32) -> VT {\n  return VT(${
          this.width === 4 ? [0, 1, 2, 3].map(m).join(", ") : "dropoutMultiplier(i)"
        });\n}`;
    const loads = inputLoadFunctions(
      this.variableNames.filter((n) => n !== "dropoutKey"),
      "VT",
      this.textured,
    );
    return [`alias VT = ${vt};\nconst VW = ${this.width};`, scale, loads, ...parts, wgsl(kernel)]
      .join("\n");
  }
}

/** Uniforms of the dropout variants (dropout_mask.wgsl; the key is the dropoutKey input). */
const DROPOUT_UNIFORMS = "threshold : u32, scale : f32,";

class MaxPool2ForwardProgram extends MaxPool2Program {
  shaderKey: string;
  variableNames = ["x"];
  private readonly dropout: boolean;

  constructor(xShape: number[], dropout: boolean) {
    const yShape = maxPool2Shape(xShape);
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    super(yShape, xShape[3], 1, size(yShape), size(xShape));
    this.dropout = dropout;
    if (dropout) this.withDropoutKey(DROPOUT_UNIFORMS);
    this.shaderKey = `maxPool2_w${this.width}${dropout ? "_dropout" : ""}${
      this.textured ? "_tex" : ""
    }`;
  }

  getUserCode(): string {
    return this.source("max_pool2/max_pool2.wgsl", this.dropout);
  }
}

class MaxPool2GradProgram extends MaxPool2Program {
  shaderKey: string;
  variableNames = ["dy", "x"];
  private readonly dropout: boolean;

  constructor(xShape: number[], dropout: boolean) {
    const [n, h, w, c] = xShape;
    const windows = n * Math.ceil(h / 2) * Math.ceil(w / 2) * c;
    super(xShape, c, 2, windows, n * h * w * c);
    this.dropout = dropout;
    if (dropout) this.withDropoutKey(DROPOUT_UNIFORMS);
    this.shaderKey = `maxPool2Grad_w${this.width}${dropout ? "_dropout" : ""}${
      this.textured ? "_tex" : ""
    }`;
  }

  getUserCode(): string {
    return this.source("max_pool2/max_pool2_grad.wgsl", this.dropout);
  }
}

/** The pooled x on webgpu (then dropout when given): one dispatch. */
export function runMaxPool2(
  backend: WebGPUBackend,
  x: TensorInfo,
  dropout?: DropoutAttrs,
  dropoutKey?: TensorInfo,
): TensorInfo {
  const program = new MaxPool2ForwardProgram(x.shape, dropout !== undefined);
  if (!dropout) return runProgram(backend, program, [x], []);
  if (!dropoutKey) throw new Error("maxPool2 with dropout: no dropoutKey input");
  return runProgram(backend, program, [x, dropoutKey], dropoutUniforms(dropout));
}

export const maxPool2Webgpu: KernelConfig = {
  kernelName: MAX_POOL2,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, dropoutKey } = inputs as { x: TensorInfo; dropoutKey?: TensorInfo };
    return runMaxPool2(backend as WebGPUBackend, x, dropoutOf(attrs), dropoutKey);
  },
};

export const maxPool2DropoutWebgpu: KernelConfig = {
  ...maxPool2Webgpu,
  kernelName: MAX_POOL2_DROPOUT,
};

export const maxPool2GradWebgpu: KernelConfig = {
  kernelName: MAX_POOL2_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { dy, x, dropoutKey } = inputs as {
      dy: TensorInfo;
      x: TensorInfo;
      dropoutKey?: TensorInfo;
    };
    const d = dropoutOf(attrs);
    const program = new MaxPool2GradProgram(x.shape, d !== undefined);
    if (!d) return runProgram(backend as WebGPUBackend, program, [dy, x], []);
    if (!dropoutKey) throw new Error("maxPool2 gradient with dropout: no dropoutKey input");
    return runProgram(backend as WebGPUBackend, program, [dy, x, dropoutKey], dropoutUniforms(d));
  },
};
