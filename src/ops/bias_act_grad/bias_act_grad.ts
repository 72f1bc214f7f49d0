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
import type { NamedAttrMap } from "@tensorflow/tfjs-core";
import { UsageError } from "../../errors.ts";
import type { BiasActivation } from "./bias_act_grad_ref.ts";
import { CAPPED_LOOP_BUDGET, loopCapped } from "../backend/loop_cap.ts";

export const BIAS_ACT_GRAD = "BiasActGrad";
export type { BiasActivation };

/**
 * Rows the kernel's loop allows where the adapter caps loops (backend/loop_cap.ts): ROW_LANES (16) x
 * 60,000 iterations, under lavapipe 22's 65,535.
 */
export const BIAS_ACT_GRAD_MAX_ROWS = 16 * CAPPED_LOOP_BUDGET;

/** BIAS_ACT_GRAD_MAX_ROWS where loops are capped, unbounded where they run to the end. */
export function biasActGradMaxRows(): number {
  return loopCapped() ? BIAS_ACT_GRAD_MAX_ROWS : Number.POSITIVE_INFINITY;
}
/** The activation attr, checked. */
export function activationOf(attrs: NamedAttrMap | undefined): BiasActivation {
  const a = attrs?.activation;
  if (a !== "relu" && a !== "linear") {
    throw new UsageError(`${BIAS_ACT_GRAD}: activation must be relu or linear, got ${a}`);
  }
  return a as BiasActivation;
}

/** The inputs, checked: dy float32 of rank 1-4, y (relu) of dy's shape; rows and channels. */
export function sizes(inputs: tf.NamedTensorInfoMap, activation: BiasActivation) {
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

/**
 * dz and dbias through y = act(z + bias) (last axis = channels): this op on webgpu and cpu up to
 * biasActGradMaxRows() rows, else tfjs's step, mul and sum (same math).
 */
export function biasActGrad(
  dy: tf.Tensor,
  y: tf.Tensor,
  activation: BiasActivation,
): { dz: tf.Tensor; dbias: tf.Tensor1D } {
  const c = dy.shape[dy.rank - 1];
  const rows = dy.size / Math.max(c, 1);
  const backend = tf.getBackend();
  if ((backend !== "webgpu" && backend !== "cpu") || rows > biasActGradMaxRows()) {
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
