// Dense + bias + activation (the models' dense layers): y = act(x · kernel + bias), x (N, K),
// kernel (K, C), act ReLU or linear, float32. On webgpu the layer is a 1x1 convolution over
// [N, 1, 1, K] run by the shared generated GEMM (conv/gemm.ts): forward = the forward view with
// the biasRelu or bias epilogue, dx = the backward-data view, dkernel = the backward-filter view
// (reduction over the batch rows in one slice, see below). On cpu: the plain-loop reference
// (dense_bias_act_ref.ts). Kernels:
//   DenseBiasAct          {x, kernel, bias}; attrs {activation}  -> y (N, C)
//   DenseBackpropInput    {dz, kernel}                           -> dx (N, K)
//   DenseBackpropKernel   {dz, x}                                -> dkernel (K, C)
// The gradient gets dz (dy masked by y > 0 for ReLU; linear: dy) and dbias from one
// BiasActGrad dispatch (bias_act_grad.ts) and runs the two backprops inside the x and kernel thunks, so dx costs nothing where no one needs it.
//
// Loop bounds where the adapter caps loops (backend/loop_cap.ts; lavapipe 22 stops any loop after 65,535
// iterations, elsewhere they are unbounded): forward K / 4 (K / 1 when K is
// not a multiple of 4) reduction steps per invocation, dx C / 4 (or C), dkernel the batch rows of
// its slice (filterSplits caps a slice at 60,000 rows, 30,000 for staged configs). The staged
// (workgroup-memory) configs loop about twice per reduction step (staging plus compute loops, as
// filterSplits assumes), so K and C above 30,000 are refused there.
//
// Why one slice for dkernel: the conv default splits the N*Ho*Wo reduction into ~32 slices, but
// here a pixel is a whole batch row: at batch 128 a slice would hold 4 rows and the partials
// (32 x K x C floats) and their sum cost more than the GEMM. bench/probes/dense_probe.ts, llvmpipe,
// batch 128, GPU ms, dkernel of 3136 -> 128 with r16c32: 1 slice 9.8, 4 slices 15.4, 16 slices 44.
//
// Where it is used (denseUsesGemm): the autotuner's choice per shape and batch bucket where it
// timed both (autotune_dense.ts); else the rule, ours on software adapters, where it measured
// 3.5-7x faster, and tfjs's matMul on GPUs, not measured yet (FMNIST_DENSE=gemm|matmul forces
// one). bench/probes/dense_probe.ts, llvmpipe (LLVM 15.0.6,
// 256 bits), batch 128, GPU timestamps, median of 3, software default configs vs tfjs-webgpu's
// packed matMul (the project pins MatMulPacked), ms:
//   shape (N x K -> C)   tfjs fwd / dx / dW        ours fwd / dx / dW
//   128 x 3136 -> 128    14.4 / 84.4 / 36.8        5.7 / 10.6 /  9.8   (5.2x on the sum)
//   128 x 1600 -> 128    14.3 / 40.3 / 16.9        3.0 /  4.1 /  3.2   (7.0x)
//   128 x  128 -> 10     0.63 / 0.74 / 0.62        0.20 / 0.16 / 0.21  (3.5x)
// The autotuner's host-sync A/B (autotune_dense.ts, forward + the three gradients to read-back,
// median of 5, ms, ours vs tfjs): batch 64 / 128, 3136 -> 128: 46.7 vs 164 / 90.3 vs 344;
// 1600 -> 128: 23.9 vs 73.3 / 37.8 vs 198; 128 -> 10: 13.7 vs 13.9 / 19.7 vs 22.7. In the enhanced
// step at batch 128 (deno task profile, GPU timestamps, tfjs's matMul vs this, back to back) the
// dense kernels took 34 ms per step instead of 148 (2.6% of kernel time instead of 9.4%); the
// whole-step A/B: `git show be6abbb:BENCHMARKS.md`, "Dense layers on the generated GEMM".
// The plan's bwdFilter config for the shape (e.g. ...s32) runs here with one slice.

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { UsageError } from "../../errors.ts";
import { type AdapterKind, batchBucket } from "../conv/tiling.ts";
import { defaultTilePlan, type DenseImpl, type TilePlan } from "../conv/tile_plan.ts";
import { denseMode } from "../../flags.ts";
import { biasActGrad } from "../bias_act_grad/bias_act_grad.ts";
import type { DenseActivation } from "./dense_bias_act_ref.ts";
import { loopBudget } from "../backend/loop_cap.ts";

export const DENSE_BIAS_ACT = "DenseBiasAct";
export const DENSE_BACKPROP_INPUT = "DenseBackpropInput";
export const DENSE_BACKPROP_KERNEL = "DenseBackpropKernel";
export type { DenseActivation };

/**
 * Longest reduction or column count the kernels' loops allow: half the loop budget (staged
 * configs loop twice per step), unbounded where loops run to the end (backend/loop_cap.ts).
 */
export function maxExtent(): number {
  return loopBudget() / 2;
}

export type { DenseImpl };
/** Autotune candidates, in the order the tuner times them (ties go to the first). */
export const DENSE_IMPLS: readonly DenseImpl[] = ["gemm", "matmul"];

/** The measured rule when nothing is tuned: ours on software adapters (header), else tfjs's. */
export function defaultDenseImpl(kind: AdapterKind): DenseImpl {
  return kind === "software" ? "gemm" : "matmul";
}

/** Autotune cache key of a dense layer: `dense:3136>128:relu:b128` (batch bucket as for convs). */
export function denseProblemKey(
  batch: number,
  k: number,
  c: number,
  activation: DenseActivation,
): string {
  return `dense:${k}>${c}:${activation}:b${batchBucket(batch)}`;
}

/**
 * Whether a fused-ops dense layer of this shape runs this op (true) or tfjs's fused matMul:
 * FMNIST_DENSE when it forces one; on webgpu the plan's (the autotuner's) choice for the shape,
 * else the measured rule (defaultDenseImpl: ours on software adapters, where it measured 3.5-7x faster;
 * tfjs's on discrete GPUs until tuning measures them); tfjs's on the cpu backend (our cpu kernels
 * are plain-loop references).
 */
export function denseUsesGemm(
  plan: TilePlan | undefined,
  batch: number,
  k: number,
  c: number,
  activation: DenseActivation,
): boolean {
  const mode = denseMode();
  if (mode !== "auto") return mode === "gemm";
  if (tf.getBackend() !== "webgpu") return false;
  const p = plan ?? defaultTilePlan(tf.backend());
  return (p.dense.get(denseProblemKey(batch, k, c, activation)) ?? defaultDenseImpl(p.kind)) ===
    "gemm";
}

/** The inputs, checked for presence, dtype and rank, in the order given. */
export function checkInputs(
  kernel: string,
  pairs: [string, TensorInfo | undefined, number][],
): TensorInfo[] {
  return pairs.map(([name, t, rank]) => {
    if (!t) throw new Error(`${kernel}: missing input ${name}`);
    if (t.dtype !== "float32") throw new UsageError(`${kernel}: ${name} must be float32`);
    if (t.shape.length !== rank) {
      throw new UsageError(`${kernel}: ${name} must have rank ${rank}, got [${t.shape}]`);
    }
    return t;
  });
}

export function activationOf(attrs: NamedAttrMap | undefined): DenseActivation {
  const a = attrs?.activation;
  if (a !== "relu" && a !== "linear") {
    throw new UsageError(`${DENSE_BIAS_ACT}: activation must be relu or linear, got ${a}`);
  }
  return a as DenseActivation;
}

/** Sizes of the forward: x (n, k), kernel (k, c), bias (c). */
export function forwardSizes(inputs: tf.NamedTensorInfoMap) {
  const [x, kernel, bias] = checkInputs(DENSE_BIAS_ACT, [
    ["x", inputs.x, 2],
    ["kernel", inputs.kernel, 2],
    ["bias", inputs.bias, 1],
  ]);
  const [n, k] = x.shape;
  const c = kernel.shape[1];
  if (kernel.shape[0] !== k) {
    throw new UsageError(
      `${DENSE_BIAS_ACT}: kernel must have ${k} rows (x has [${x.shape}]), got [${kernel.shape}]`,
    );
  }
  if (bias.shape[0] !== c) {
    throw new UsageError(`${DENSE_BIAS_ACT}: bias must have shape [${c}], got [${bias.shape}]`);
  }
  if (k > maxExtent() || c > maxExtent()) {
    throw new UsageError(`${DENSE_BIAS_ACT}: K and C must be <= ${maxExtent()}, got ${k}, ${c}`);
  }
  return { x, kernel, bias, n, k, c };
}

/** Sizes of a backprop: dz (n, c) and the other input, x (n, k) or kernel (k, c). */
function backpropSizes(
  name: string,
  dzIn: TensorInfo | undefined,
  otherIn: TensorInfo | undefined,
  otherName: string,
) {
  const [dz, other] = checkInputs(name, [["dz", dzIn, 2], [otherName, otherIn, 2]]);
  const [n, c] = dz.shape;
  const k = otherName === "x" ? other.shape[1] : other.shape[0];
  const expected = otherName === "x" ? [n, k] : [k, c];
  if (!tf.util.arraysEqual(other.shape, expected)) {
    throw new UsageError(
      `${name}: ${otherName} must have shape [${expected}], got [${other.shape}]`,
    );
  }
  return { dz, other, n, k, c };
}

/** DenseBackpropInput's inputs, checked: dz (n, c), kernel (k, c). */
export const inputGradSizes = (inputs: tf.NamedTensorInfoMap) =>
  backpropSizes(DENSE_BACKPROP_INPUT, inputs.dz, inputs.kernel, "kernel");

/** DenseBackpropKernel's inputs, checked: dz (n, c), x (n, k). */
export const kernelGradSizes = (inputs: tf.NamedTensorInfoMap) =>
  backpropSizes(DENSE_BACKPROP_KERNEL, inputs.dz, inputs.x, "x");

export const denseBiasActGradient: tf.GradConfig = {
  kernelName: DENSE_BIAS_ACT,
  inputsToSave: ["x", "kernel"],
  outputsToSave: [true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, kernel, y] = saved;
    const g = Array.isArray(dy) ? dy[0] : dy;
    const { dz, dbias } = biasActGrad(g, y, activationOf(attrs));
    const tiles = attrs.tiles; // the forward's plan, for the backward views
    const run = (name: string, inputs: tf.NamedTensorMap) =>
      tf.engine().runKernel(name, inputs, { tiles } as unknown as NamedAttrMap) as tf.Tensor2D;
    return {
      x: () => run(DENSE_BACKPROP_INPUT, { dz, kernel }),
      kernel: () => run(DENSE_BACKPROP_KERNEL, { dz, x }),
      bias: () => dbias,
    };
  },
};

/** y = act(x · kernel + bias); differentiable w.r.t. x, kernel and bias. */
export function denseBiasAct(
  x: tf.Tensor2D,
  kernel: tf.Tensor2D,
  bias: tf.Tensor1D,
  activation: DenseActivation,
  tiles?: TilePlan,
): tf.Tensor2D {
  return tf.engine().runKernel(DENSE_BIAS_ACT, { x, kernel, bias }, {
    activation,
    tiles,
  } as unknown as NamedAttrMap) as tf.Tensor2D;
}

/**
 * A fused-ops dense layer, a drop-in for denseBiasAct: this op or tfjs's fused matMul, per
 * denseUsesGemm under `tiles`. Same math, same variables; layers.ts's dense() and the
 * autotuner's timing run it.
 */
export const denseLayer: typeof denseBiasAct = (x, kernel, bias, activation, tiles) => {
  const [n, k] = x.shape;
  return denseUsesGemm(tiles, n, k, kernel.shape[1], activation)
    ? denseBiasAct(x, kernel, bias, activation, tiles)
    : tf.fused.matMul({ a: x, b: kernel, bias, activation }) as tf.Tensor2D;
};
