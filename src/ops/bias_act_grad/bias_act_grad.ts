// The gradient through a bias add and its activation, y = act(z + bias[c]), as one kernel,
// BiasActGrad: {dy, y (relu only)}, attrs {activation} -> [dz, dbias] (relu) or [dbias] (linear,
// where dz is dy itself). Used by the gradients of the dense layers (dense_bias_act.ts) and of
// conv + bias + ReLU (conv_bias_relu.ts). On webgpu one multi-output dispatch
// (src/ops/bias_act_grad/bias_act_grad.wgsl); on cpu the plain-loop reference (bias_act_grad_ref.ts).
//
// Why: tfjs spends four dispatches on it, step(y), mul, and a sum over every axis but the last,
// which tfjs runs as a transpose (channels first) and a reduce; a linear layer's bias still costs
// transpose + reduce. Dispatches per step (bench/dispatches.ts, counted): enhanced 69 -> 65,
// baseline 38 -> 28 (its two conv layers and two dense layers).
//
// Parallelism: one workgroup per 4 channel groups (16 channels with vec4) over all rows, so a
// 32-channel conv layer runs on 2 workgroups: enough on llvmpipe's 2 threads and simple (no
// second pass for the sums); on a wide GPU a split over rows with a partials pass would spread
// the work further, at the dispatch this removed.

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { UsageError } from "../../errors.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { biasActGradRef, type BiasActivation } from "./bias_act_grad_ref.ts";
import type { OpKernels } from "../backend/registration.ts";

export const BIAS_ACT_GRAD = "BiasActGrad";
export type { BiasActivation };

/** Rows the kernel's loop allows: ROW_LANES (16) x 60,000 iterations, under llvmpipe's 65,535. */
export const BIAS_ACT_GRAD_MAX_ROWS = 16 * 60000;
const CHANNEL_LANES = 4;
const WORKGROUP = 64;

class BiasActGradProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames: string[];
  override readonly uniforms = "items : i32, groups : i32,";
  override readonly everyInvocation = true;
  override readonly vec4: boolean;
  private readonly relu: boolean;

  constructor(relu: boolean, vec4: boolean) {
    super();
    this.relu = relu;
    this.vec4 = vec4;
    this.shaderKey = `biasActGrad_${relu ? "relu" : "linear"}`;
    this.outputNames = relu ? ["dz", "dbias"] : ["dbias"];
    this.variableNames = relu ? ["dy", "y"] : ["dy"];
  }

  getUserCode(): string {
    const element = this.vec4
      ? "alias VT = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias VT = f32;\nconst VW : i32 = 1;";
    const gradAt = this.relu
      ? "fn gradAt(i : i32) -> VT {\n  let d = select(VT(0.0), dy[i], y[i] > VT(0.0));\n" +
        "  dz[i] = d;\n  return d;\n}"
      : "fn gradAt(i : i32) -> VT {\n  return dy[i];\n}";
    return [element, gradAt, wgsl("bias_act_grad/bias_act_grad.wgsl")].join(
      "\n",
    );
  }
}

function activationOf(attrs: NamedAttrMap | undefined): BiasActivation {
  const a = attrs?.activation;
  if (a !== "relu" && a !== "linear") {
    throw new UsageError(`${BIAS_ACT_GRAD}: activation must be relu or linear, got ${a}`);
  }
  return a as BiasActivation;
}

/** The inputs, checked: dy float32 of rank 1-4, y (relu) of dy's shape; rows and channels. */
function sizes(inputs: tf.NamedTensorInfoMap, activation: BiasActivation) {
  const { dy, y } = inputs;
  if (!dy) throw new Error(`${BIAS_ACT_GRAD}: missing input dy`);
  if (dy.dtype !== "float32") throw new UsageError(`${BIAS_ACT_GRAD}: dy must be float32`);
  if (dy.shape.length < 1 || dy.shape.length > 4) {
    throw new UsageError(`${BIAS_ACT_GRAD}: dy must have rank 1-4, got [${dy.shape}]`);
  }
  if (activation === "relu") {
    if (!y) throw new Error(`${BIAS_ACT_GRAD}: relu needs input y`);
    if (!tf.util.arraysEqual(y.shape, dy.shape) || y.dtype !== "float32") {
      throw new UsageError(
        `${BIAS_ACT_GRAD}: y must be float32 of dy's shape [${dy.shape}], got [${y.shape}]`,
      );
    }
  }
  const c = dy.shape[dy.shape.length - 1];
  const rows = c === 0 ? 0 : tf.util.sizeFromShape(dy.shape) / c;
  return { dy, y, c, rows };
}

const biasActGradWebgpu: tf.KernelConfig = {
  kernelName: BIAS_ACT_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const activation = activationOf(attrs);
    const { dy, y, c, rows } = sizes(inputs, activation);
    if (rows > BIAS_ACT_GRAD_MAX_ROWS) {
      throw new UsageError(
        `${BIAS_ACT_GRAD}: at most ${BIAS_ACT_GRAD_MAX_ROWS} rows (llvmpipe's loop cap), got ${rows}`,
      );
    }
    const relu = activation === "relu";
    const b = backend as unknown as WebGPUBackend;
    if (rows === 0) {
      // No rows: dz is empty, dbias sums nothing (the kernel would write neither).
      const dbias = b.makeTensorInfo([c], "float32", new Float32Array(c));
      return relu ? [b.makeTensorInfo(dy.shape, "float32", new Float32Array(0)), dbias] : [dbias];
    }
    const vec4 = c % 4 === 0;
    const groups = vec4 ? c / 4 : c;
    const tiles = Math.ceil(groups / CHANNEL_LANES);
    return runMultiOutputProgram(
      b,
      new BiasActGradProgram(relu, vec4),
      relu ? [dy.shape, [c]] : [[c]],
      relu ? [dy, y!] : [dy],
      tiles * WORKGROUP,
      [{ type: "int32", data: [rows] }, { type: "int32", data: [groups] }],
    );
  },
};

const biasActGradCpu = cpuKernel(BIAS_ACT_GRAD, (inputs, cpu, attrs) => {
  const activation = activationOf(attrs as NamedAttrMap);
  const { dy, y, c } = sizes(inputs, activation);
  const v = (t: TensorInfo) => cpuValues(cpu, t);
  const { dz, dbias } = biasActGradRef(v(dy), y && v(y), c, activation);
  const db = cpu.makeTensorInfo([c], "float32", dbias);
  return activation === "relu" ? [cpu.makeTensorInfo(dy.shape, "float32", dz), db] : [db];
});

/**
 * dz and dbias through y = act(z + bias) (last axis = channels): this op on webgpu and cpu up to
 * BIAS_ACT_GRAD_MAX_ROWS rows, else tfjs's step, mul and sum (same math).
 */
export function biasActGrad(
  dy: tf.Tensor,
  y: tf.Tensor,
  activation: BiasActivation,
): { dz: tf.Tensor; dbias: tf.Tensor1D } {
  const c = dy.shape[dy.rank - 1];
  const rows = dy.size / Math.max(c, 1);
  const backend = tf.getBackend();
  if ((backend !== "webgpu" && backend !== "cpu") || rows > BIAS_ACT_GRAD_MAX_ROWS) {
    const dz = activation === "relu" ? tf.mul(dy, tf.step(y)) : dy;
    const axes = dy.shape.slice(0, -1).map((_, i) => i);
    return { dz, dbias: tf.sum(dz, axes) as tf.Tensor1D };
  }
  const relu = activation === "relu";
  const out = [
    tf.engine().runKernel(BIAS_ACT_GRAD, relu ? { dy, y } : { dy }, {
      activation,
    } as unknown as NamedAttrMap),
  ].flat() as tf.Tensor[];
  return relu
    ? { dz: out[0], dbias: out[1] as tf.Tensor1D }
    : { dz: dy, dbias: out[0] as tf.Tensor1D };
}

/** This op's kernels and gradients; src/ops/registry.ts registers them. */
export const biasActGradKernels: OpKernels = {
  webgpu: [biasActGradWebgpu],
  cpu: [biasActGradCpu],
  gradients: [],
};
