// Conv + bias + ReLU followed by the 2x2 / stride-2 `valid` max-pool, as one op (the `baseline`
// model's two conv stages; the "max-pool fused into the conv block"):
//   ConvBiasReluPool2          {x, filter, bias}; attrs {strides, pad} -> [pooled, y]
//   MaxPool2ReluBiasGrad       {dy (pooled gradient), y} -> [dz, dbias]
// Forward: the conv with the biasRelu epilogue (y, saved for backward) and the pool pass, the
// same two dispatches as the separate ops. Backward: ONE pass from the pooled gradient to dz and
// dbias (src/ops/conv_bias_relu_pool2/max_pool2_relu_bias_grad.wgsl), then the conv backprops of dz, where the
// separate ops take two (MaxPool2Grad writes dy at conv resolution; BiasActGrad reads it and y
// again to write dz and sum dbias). The pass loads y 4 times and dy once per window and writes
// dz once: about half the memory traffic of the pair.
// Measured: 2 dispatches fewer per baseline step (bench/dispatches.ts). The pass alone vs the
// pair and vs the tfjs ops before BiasActGrad (bench/probes/conv_bias_relu_pool2_probe.ts, llvmpipe
// LLVM 15.0.6, batch 128, median of 9 alternating, GPU ms; a training run and a probe shared the
// 2 cores, so absolute times are high): [128,26,26,32] tfjs ops 66.4, separate 27.4, fused 22.0;
// [128,11,11,64] 24.9, 5.5, 3.0. The fused pass costs about what MaxPool2Grad alone does: its
// loads and stores are the pool gradient's (5 loads, 4 stores per window); the bias pass's
// 2 loads and a store per element are what it removes.
// Parallelism: like BiasActGrad, one workgroup per 4 channel groups over all windows (a
// 32-channel stage runs on 2 workgroups; enough for llvmpipe's 2 threads, narrow for a GPU).
// Past 960,000 windows (llvmpipe's loop cap over 16 lanes) the gradient runs the two separate
// kernels instead. The cpu kernels compose the references (conv_bias_relu_ref.ts,
// max_pool2_ref.ts, bias_act_grad_ref.ts).

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { UsageError } from "../../errors.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { runConvForward } from "../conv/passes.ts";
import { convBackpropData, convBackpropFilter } from "../conv_backprop/conv_backprop.ts";
import {
  type ConvBiasReluAttrs,
  geometryOf,
  validateConvBiasRelu,
} from "../conv_bias_relu/conv_bias_relu.ts";
import { convBiasReluRef } from "../conv_bias_relu/conv_bias_relu_ref.ts";
import { MAX_POOL2_GRAD } from "../max_pool2/max_pool2.ts";
import { runMaxPool2 } from "../max_pool2/max_pool2_webgpu.ts";
import { maxPool2GradRef, maxPool2Ref, maxPool2Shape } from "../max_pool2/max_pool2_ref.ts";
import { biasActGrad } from "../bias_act_grad/bias_act_grad.ts";
import { biasActGradRef } from "../bias_act_grad/bias_act_grad_ref.ts";
import type { OpKernels } from "../backend/registration.ts";
import { convAttrs } from "../conv/attrs.ts";

export const CONV_BIAS_RELU_POOL2 = "ConvBiasReluPool2";
export const MAX_POOL2_RELU_BIAS_GRAD = "MaxPool2ReluBiasGrad";

/** Windows the gradient kernel's loop allows: 16 lanes x 60,000 iterations (llvmpipe: 65,535). */
export const POOL_GRAD_MAX_WINDOWS = 16 * 60000;
const CHANNEL_LANES = 4;
const WORKGROUP = 64;

/** Windows of the ceil grid the gradient pass walks: N x ceil(H / 2) x ceil(W / 2). */
function windowsOf(shape: readonly number[]): number {
  return shape[0] * Math.ceil(shape[1] / 2) * Math.ceil(shape[2] / 2);
}

class MaxPool2ReluBiasGradProgram extends MultiOutputProgram {
  readonly shaderKey = "maxPool2ReluBiasGrad";
  readonly outputNames = ["dz", "dbias"];
  readonly variableNames = ["dy", "y"];
  override readonly uniforms =
    "items : i32, groups : i32, inH : i32, inW : i32, outH : i32, outW : i32,";
  override readonly everyInvocation = true;
  override readonly vec4: boolean;

  constructor(vec4: boolean) {
    super();
    this.vec4 = vec4;
  }

  getUserCode(): string {
    const element = this.vec4
      ? "alias VT = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias VT = f32;\nconst VW : i32 = 1;";
    return [element, wgsl("conv_bias_relu_pool2/max_pool2_relu_bias_grad.wgsl")].join("\n");
  }
}

/** dy (pooled) and y (N, H, W, C), checked against each other. */
function gradInputs(inputs: tf.NamedTensorInfoMap) {
  const { dy, y } = inputs;
  if (!dy || !y) throw new Error(`${MAX_POOL2_RELU_BIAS_GRAD}: needs inputs dy, y`);
  if (y.shape.length !== 4 || y.shape[1] < 2 || y.shape[2] < 2) {
    throw new UsageError(`${MAX_POOL2_RELU_BIAS_GRAD}: y must be NHWC, >= 2x2, got [${y.shape}]`);
  }
  const pooled = maxPool2Shape(y.shape);
  if (!tf.util.arraysEqual(dy.shape, pooled)) {
    throw new UsageError(
      `${MAX_POOL2_RELU_BIAS_GRAD}: dy must have shape [${pooled}] (y pooled), got [${dy.shape}]`,
    );
  }
  return { dy, y };
}

const maxPool2ReluBiasGradWebgpu: tf.KernelConfig = {
  kernelName: MAX_POOL2_RELU_BIAS_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { dy, y } = gradInputs(inputs);
    const [n, h, w, c] = y.shape;
    const windows = windowsOf(y.shape);
    if (windows > POOL_GRAD_MAX_WINDOWS) {
      throw new UsageError(
        `${MAX_POOL2_RELU_BIAS_GRAD}: at most ${POOL_GRAD_MAX_WINDOWS} windows, got ${windows}`,
      );
    }
    const vec4 = c % 4 === 0;
    const groups = vec4 ? c / 4 : c;
    const i32 = (v: number) => ({ type: "int32" as const, data: [v] });
    return runMultiOutputProgram(
      backend as unknown as WebGPUBackend,
      new MaxPool2ReluBiasGradProgram(vec4),
      [y.shape, [c]],
      [dy, y],
      n === 0 ? 0 : Math.ceil(groups / CHANNEL_LANES) * WORKGROUP,
      [i32(windows), i32(groups), i32(h), i32(w), i32(dy.shape[1]), i32(dy.shape[2])],
    );
  },
};

const maxPool2ReluBiasGradCpu = cpuKernel(MAX_POOL2_RELU_BIAS_GRAD, (inputs, cpu) => {
  const { dy, y } = gradInputs(inputs);
  const yv = cpuValues(cpu, y);
  const routed = maxPool2GradRef(cpuValues(cpu, dy), yv, y.shape);
  const { dz, dbias } = biasActGradRef(routed, yv, y.shape[3], "relu");
  return [
    cpu.makeTensorInfo(y.shape, "float32", dz),
    cpu.makeTensorInfo([y.shape[3]], "float32", dbias),
  ];
});

const convBiasReluPool2Webgpu: tf.KernelConfig = {
  kernelName: CONV_BIAS_RELU_POOL2,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { g, x, filter, bias } = geometryOf(inputs, attrs);
    const b = backend as unknown as WebGPUBackend;
    const y = runConvForward(b, x, filter, g, "biasRelu", [bias]);
    return [runMaxPool2(b, y), y];
  },
};

const convBiasReluPool2Cpu = cpuKernel(CONV_BIAS_RELU_POOL2, (inputs, cpu, attrs) => {
  const { g, x, filter, bias } = geometryOf(inputs, attrs as NamedAttrMap);
  const v = (t: TensorInfo) => Float32Array.from(cpuValues(cpu, t));
  const y = convBiasReluRef(v(x), v(filter), v(bias), g);
  const yShape = [g.batch, g.outH, g.outW, g.outC];
  return [
    cpu.makeTensorInfo(maxPool2Shape(yShape), "float32", maxPool2Ref(y, yShape)),
    cpu.makeTensorInfo(yShape, "float32", y),
  ];
});

/** dz and dbias from the pooled gradient: one pass, or the two separate kernels past the cap. */
function poolReluBiasGrad(dy: tf.Tensor, y: tf.Tensor): { dz: tf.Tensor; dbias: tf.Tensor } {
  const backend = tf.getBackend();
  if ((backend === "webgpu" || backend === "cpu") && windowsOf(y.shape) <= POOL_GRAD_MAX_WINDOWS) {
    const [dz, dbias] = tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, { dy, y }) as tf.Tensor[];
    return { dz, dbias };
  }
  const routed = tf.engine().runKernel(MAX_POOL2_GRAD, { dy, x: y }) as tf.Tensor;
  return biasActGrad(routed, y, "relu");
}

const convBiasReluPool2Gradient: tf.GradConfig = {
  kernelName: CONV_BIAS_RELU_POOL2,
  inputsToSave: ["x", "filter"],
  outputsToSave: [false, true],
  gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, filter, y] = saved;
    const dpool = Array.isArray(dys) ? dys[0] : dys;
    if (!dpool) throw new Error(`${CONV_BIAS_RELU_POOL2}: gradient needs the pooled output's dy`);
    const a = convAttrs(attrs);
    const { dz, dbias } = poolReluBiasGrad(dpool, y);
    return {
      x: () => convBackpropData(dz as tf.Tensor4D, filter as tf.Tensor4D, x.shape, a),
      filter: () => convBackpropFilter(dz as tf.Tensor4D, x as tf.Tensor4D, filter.shape, a),
      bias: () => dbias,
    };
  },
};

/**
 * maxPool2(relu(conv2d(x, filter) + bias)) (2x2, stride 2, `valid`); differentiable w.r.t. x,
 * filter and bias. The conv output must be at least 2x2.
 */
export function convBiasReluPool2(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  attrs: ConvBiasReluAttrs,
): tf.Tensor4D {
  const a = validateConvBiasRelu(x, filter, bias, attrs);
  const { g } = geometryOf({ x, filter, bias }, a as unknown as NamedAttrMap);
  if (g.outH < 2 || g.outW < 2) {
    throw new UsageError(
      `convBiasReluPool2: the conv output must be >= 2x2, got ${g.outH}x${g.outW}`,
    );
  }
  const [pooled, y] = tf.engine().runKernel(CONV_BIAS_RELU_POOL2, { x, filter, bias }, {
    ...a,
  } as unknown as NamedAttrMap) as tf.Tensor[];
  // The tape keeps its own reference to y (outputsToSave); ours can go.
  y.dispose();
  return pooled as tf.Tensor4D;
}

/** This op's kernels and gradients; src/ops/registry.ts registers them. */
export const convBiasReluPool2Kernels: OpKernels = {
  webgpu: [convBiasReluPool2Webgpu, maxPool2ReluBiasGradWebgpu],
  cpu: [convBiasReluPool2Cpu, maxPool2ReluBiasGradCpu],
  gradients: [convBiasReluPool2Gradient],
};
