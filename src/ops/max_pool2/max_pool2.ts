// 2x2 / stride-2 `valid` max-pool as our own op, NHWC float32, any N, H, W, C (odd H / W: the
// last row / column is dropped, as tf.maxPool(x, 2, 2, "valid") does):
//   MaxPool2      inputs {x}; output y (N, floor(H / 2), floor(W / 2), C)
//   MaxPool2Grad  inputs {dy, x}; output dx (N, H, W, C): each window's dy to its first maximum
//                 in row-major order (tfjs-backend-cpu's tie rule), 0 elsewhere
// One dispatch each (src/ops/max_pool2/max_pool2.wgsl, src/ops/max_pool2/max_pool2_grad.wgsl; vec4 when C % 4 == 0),
// no loops. The gradient recomputes the argmax from the saved input, so a pool costs 2 dispatches
// per training step where tf.maxPool on webgpu costs 3 (forward, a second Pool2D pass that writes
// the argmax positions, MaxPool2DBackprop). The cpu kernels are the plain-loop reference
// (max_pool2_ref.ts), which follows tfjs's CPU maxPool / maxPoolGrad exactly.
// Optional attrs {rate, seed} (maxPool2Dropout) apply dropout to the pooled tensor in the same
// passes: the forward multiplies by the mask of src/ops/wgsl/dropout_mask.wgsl over the pooled element
// index, the gradient multiplies dy by it before routing, so dropout(maxPool2(x)) bit for bit at
// no dispatch of its own. The enhanced model's last pool, flatten and dropout run this way:
// 2 dispatches per step fewer (enhanced 65 -> 63, counted with bench/dispatches.ts); the pass
// does 2 integer hashes more per pooled element, and the dropout pass it removes read and wrote
// the [N, 3136] tensor once each way.
//
// Measured on llvmpipe (LLVM 15, 2 busy cores, load ~6; same-run A/B, batch 128):
//   pool forward + backward alone (bench/max_pool2_probe.ts, median of 15, alternating):
//     [128,28,28,32] tfjs 306 ms wall / 294 ms GPU, ours 30.6 / 17.5  (10.0x wall, 16.8x GPU)
//     [128,14,14,64] tfjs 156 / 142,               ours 18.1 / 5.4   (8.6x, 26x)
//     [128,26,26,32] tfjs 265 / 251,               ours 26.5 / 14.6  (10.0x, 17x)
//     [128,11,11,64] tfjs 93 / 82,                 ours 20.3 / 8.0   (4.6x, 10x)
//   (tfjs's MaxPool2DBackprop loops over the window per dx element and reads the positions
//   tensor; wall includes ~12 ms of read-back per call.)
//   whole training step (bench/step_ab.ts, main 208f240 vs this, alternating, median of 5
//   steps; two rounds without and two with FMNIST_AUTOTUNE=off; process CPU time is the
//   steadier figure under load):
//     enhanced: 115 -> 113 dispatches; CPU 1536 / 1517 / 1496 / 1509 -> 1299 / 1239 / 1263 /
//               1234 ms (0.83x); wall 1844 / 2308 / 3020 / 2906 -> 1917 / 1805 / 2657 / 2299 ms
//     baseline:  49 ->  47 dispatches; CPU 575 / 580 / 581 / 569 -> 362 / 347 / 362 / 351 ms
//               (0.62x); wall 851 / 903 / 957 / 990 -> 562 / 540 / 584 / 577 ms (1.5-1.7x)
//   profile (enhanced, batch 128): MaxPool2Grad 1.8% + MaxPool2 0.6% of the GPU time, where
//   MaxPool2DBackprop + Pool2D were 20.6%.
// In `baseline` the pool after conv + bias + ReLU runs inside ConvBiasReluPool2
// (conv_bias_relu_pool2.ts: its backward routes the pooled gradient, masks and sums it for the
// bias in one pass). Not fused into the conv + BN + ReLU block: bench/max_pool2_fusion_probe.ts measures a prototype BN apply
// pass that writes the pooled output at 3.3-13.5 ms less than apply + this forward (28x28x32)
// and 2.5-3.0 ms (14x14x64), and this gradient (what a backward fusion could at most remove) at
// 11-16 and 2.6-4.8 ms: at most 20-37 ms of a ~1.9 s step (1-2%) and 4 dispatches on llvmpipe.

import * as tf from "@tensorflow/tfjs-core";
import { type TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { UsageError } from "../../errors.ts";
import { type Dispatch, runProgram, splitGroups } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { maxPool2GradRef, maxPool2Ref, maxPool2Shape } from "./max_pool2_ref.ts";
import {
  checkDropoutAttrs,
  type DropoutAttrs,
  dropoutRef,
  dropoutUniforms,
} from "../dropout/dropout.ts";
import type { OpKernels } from "../backend/registration.ts";
import type { GradConfig, KernelConfig } from "@tensorflow/tfjs-core";

export const MAX_POOL2 = "MaxPool2";
export const MAX_POOL2_GRAD = "MaxPool2Grad";

/**
 * A flat program over `invocations` (one per output element or window, in units of VW
 * channels), reading `variableNames` as VT = vec4<f32> when C % 4 == 0, else f32.
 */
abstract class MaxPool2Program implements WebGPUProgram {
  outputShape: number[];
  abstract shaderKey: string;
  abstract variableNames: string[];
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: Dispatch;
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputComponent: number;
  variableComponents: number[];
  protected readonly width: number;

  constructor(outputShape: number[], channels: number, inputs: number, invocations: number) {
    this.outputShape = outputShape;
    this.width = channels % 4 === 0 ? 4 : 1;
    this.outputComponent = this.width;
    this.variableComponents = new Array(inputs).fill(this.width);
    const [gx, gz] = splitGroups(Math.ceil(invocations / this.width / 64));
    this.dispatch = [gx, 1, gz];
  }

  abstract getUserCode(): string;

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
    return [`alias VT = ${vt};\nconst VW = ${this.width};`, scale, ...parts, wgsl(kernel)]
      .join("\n");
  }
}

/** Uniforms of the dropout variants (dropout_mask.wgsl). */
const DROPOUT_UNIFORMS = "key : u32, threshold : u32, scale : f32,";

class MaxPool2ForwardProgram extends MaxPool2Program {
  shaderKey: string;
  variableNames = ["x"];
  uniforms?: string;
  private readonly dropout: boolean;

  constructor(xShape: number[], dropout: boolean) {
    const yShape = maxPool2Shape(xShape);
    super(yShape, xShape[3], 1, yShape.reduce((a, b) => a * b, 1));
    this.dropout = dropout;
    if (dropout) this.uniforms = DROPOUT_UNIFORMS;
    this.shaderKey = `maxPool2_w${this.width}${dropout ? "_dropout" : ""}`;
  }

  getUserCode(): string {
    return this.source("max_pool2/max_pool2.wgsl", this.dropout);
  }
}

class MaxPool2GradProgram extends MaxPool2Program {
  shaderKey: string;
  variableNames = ["dy", "x"];
  uniforms?: string;
  private readonly dropout: boolean;

  constructor(xShape: number[], dropout: boolean) {
    const [n, h, w, c] = xShape;
    super(xShape, c, 2, n * Math.ceil(h / 2) * Math.ceil(w / 2) * c);
    this.dropout = dropout;
    if (dropout) this.uniforms = DROPOUT_UNIFORMS;
    this.shaderKey = `maxPool2Grad_w${this.width}${dropout ? "_dropout" : ""}`;
  }

  getUserCode(): string {
    return this.source("max_pool2/max_pool2_grad.wgsl", this.dropout);
  }
}

/** The kernels' optional dropout of the pooled tensor: {rate, seed}, rate 0 (none) by default. */
function dropoutOf(attrs: unknown): DropoutAttrs | undefined {
  const a = (attrs ?? {}) as Partial<DropoutAttrs>;
  if (a.rate === undefined || a.rate === 0) return undefined;
  const d = { rate: Number(a.rate), seed: Number(a.seed ?? 0) };
  checkDropoutAttrs(d);
  return d;
}

/** The pooled x on webgpu (then dropout when given): one dispatch. */
export function runMaxPool2(
  backend: WebGPUBackend,
  x: TensorInfo,
  dropout?: DropoutAttrs,
): TensorInfo {
  const program = new MaxPool2ForwardProgram(x.shape, dropout !== undefined);
  return runProgram(backend, program, [x], dropout ? dropoutUniforms(dropout) : []);
}

const maxPool2Webgpu: KernelConfig = {
  kernelName: MAX_POOL2,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x } = inputs as { x: TensorInfo };
    return runMaxPool2(backend as WebGPUBackend, x, dropoutOf(attrs));
  },
};

const maxPool2Cpu = cpuKernel(MAX_POOL2, ({ x }, cpu, attrs) => {
  const y = maxPool2Ref(cpuValues(cpu, x), x.shape);
  const d = dropoutOf(attrs);
  return cpu.makeTensorInfo(maxPool2Shape(x.shape), "float32", d ? dropoutRef(y, d) : y);
});

const maxPool2GradWebgpu: KernelConfig = {
  kernelName: MAX_POOL2_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
    const d = dropoutOf(attrs);
    const program = new MaxPool2GradProgram(x.shape, d !== undefined);
    return runProgram(backend as WebGPUBackend, program, [dy, x], d ? dropoutUniforms(d) : []);
  },
};

const maxPool2GradCpu = cpuKernel(MAX_POOL2_GRAD, ({ dy, x }, cpu, attrs) => {
  const d = dropoutOf(attrs);
  const g = d ? dropoutRef(cpuValues(cpu, dy), d) : cpuValues(cpu, dy);
  const dx = maxPool2GradRef(g, cpuValues(cpu, x), x.shape);
  return cpu.makeTensorInfo(x.shape, "float32", dx);
});

const maxPool2Gradient: GradConfig = {
  kernelName: MAX_POOL2,
  inputsToSave: ["x"],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    return {
      x: () =>
        tf.engine().runKernel(MAX_POOL2_GRAD, {
          dy: Array.isArray(dy) ? dy[0] : dy,
          x,
        }, attrs) as tf.Tensor,
    };
  },
};

/** tf.maxPool(x, 2, 2, "valid") on our kernels; differentiable w.r.t. x. */
export function maxPool2(x: tf.Tensor4D): tf.Tensor4D {
  checkPoolInput(x);
  return tf.engine().runKernel(MAX_POOL2, { x }) as tf.Tensor4D;
}

function checkPoolInput(x: tf.Tensor4D) {
  if (x.rank !== 4) throw new UsageError(`maxPool2: x must be NHWC (rank 4), got [${x.shape}]`);
  if (x.dtype !== "float32") throw new UsageError(`maxPool2: x must be float32, got ${x.dtype}`);
  if (x.shape.some((d) => d < 1) || x.shape[1] < 2 || x.shape[2] < 2) {
    throw new UsageError(`maxPool2: x must be non-empty and at least 2x2, got [${x.shape}]`);
  }
}

/**
 * dropout(maxPool2(x), rate, seed) in the pool's own dispatches (the same mask as the dropout
 * op, bit for bit: src/ops/wgsl/dropout_mask.wgsl over the pooled tensor's element index); the
 * gradient applies the mask to dy in the pool gradient's pass. Differentiable w.r.t. x.
 */
export function maxPool2Dropout(x: tf.Tensor4D, rate: number, seed: number): tf.Tensor4D {
  checkPoolInput(x);
  checkDropoutAttrs({ rate, seed });
  if (rate === 0) return maxPool2(x);
  return tf.engine().runKernel(MAX_POOL2, { x }, { rate, seed }) as tf.Tensor4D;
}

/** This op's kernels and gradients; src/ops/registry.ts registers them. */
export const maxPool2Kernels: OpKernels = {
  webgpu: [maxPool2Webgpu, maxPool2GradWebgpu],
  cpu: [maxPool2Cpu, maxPool2GradCpu],
  gradients: [maxPool2Gradient],
};
