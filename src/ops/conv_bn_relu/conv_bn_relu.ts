// Public API of the fused conv + batch-norm + ReLU block (NHWC, float32).
//
// Training runs the custom kernel ConvBnReluTrain (outputs y, z, stats; WGSL on webgpu, the
// plain-loop reference on cpu); its gradient (below) runs the backward kernels. Inference folds
// batch norm into a per-channel scale/shift and runs ConvBnReluInfer in one pass. The files:
// conv_bn_relu_webgpu.ts (kernels) over conv_bn_relu_fwd.ts / conv_bn_relu_bwd.ts (passes),
// conv_bn_relu_ref.ts / conv_bn_relu_grad_ref.ts (references and cpu kernels),
// conv_bn_relu_kernel_inputs.ts (what both backends read from a kernel's inputs).
//
// Gradients flow from the `y` output only. The `z` and `stats` outputs (pre-normalisation conv
// output; mean, variance, invStd) exist for the backward and for the running-average update of
// the moving statistics, which is not differentiated: gradients arriving through them are
// ignored. The optional running-statistics inputs (movingMean, movingVariance) do not affect y:
// their gradient is zero (tfjs asks only when they lead to a differentiated variable). The batch
// statistics themselves are differentiated through `y` (full training-mode batch-norm backward,
// see conv_bn_relu_grad_ref.ts).

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap } from "@tensorflow/tfjs-core";
import { convBackpropData } from "../conv_backprop/conv_backprop.ts";
import { UsageError } from "../../errors.ts";
import { convGeometry } from "../conv/geometry.ts";
import {
  type ConvBnReluAttrs,
  type ConvBnReluTrainResult,
  DEFAULT_EPSILON,
} from "./conv_bn_relu_stock.ts";
import { checkChannelVector, checkFloat32, convAttrs } from "../conv/attrs.ts";
import type { TilePlan } from "../conv/tile_plan.ts";
import type { ConvBnReluGradTensors } from "./conv_bn_relu_bwd.ts";

export type { ConvBnReluAttrs, ConvBnReluTrainResult };

/**
 * Kernel: inputs {x, filter, gamma, beta[, movingMean, movingVariance]}; attrs {strides, pad,
 * epsilon[, momentum]}; outputs [y, z, stats[, movingMean', movingVariance']]: given the running
 * statistics, the statistics pass also writes their update (no extra dispatch).
 */
export const CONV_BN_RELU_TRAIN = "ConvBnReluTrain";
/** Kernel: inputs {x, filter, scale, shift}; attrs {strides, pad}; output y. */
export const CONV_BN_RELU_INFER = "ConvBnReluInfer";

/** Attributes as the kernels receive them (strides always a pair, epsilon always set). */
export interface ConvBnReluKernelAttrs {
  strides: [number, number];
  pad: "same" | "valid";
  epsilon: number;
  /** false: the gradient skips dx (see ConvBnReluAttrs.inputGradient). */
  inputGradient?: boolean;
  /** With the movingMean/movingVariance inputs: moving' = moving * momentum + batch * (1 - it). */
  momentum?: number;
  tiles?: TilePlan;
}

export interface ConvBnReluOptions extends ConvBnReluAttrs {
  training: boolean;
  /** Running statistics, required when `training` is false. */
  movingMean?: tf.Tensor1D;
  movingVariance?: tf.Tensor1D;
}

function kernelAttrs(attrs: ConvBnReluAttrs): ConvBnReluKernelAttrs {
  const conv = convAttrs(attrs);
  const epsilon = attrs.epsilon ?? DEFAULT_EPSILON;
  if (!(epsilon > 0)) throw new UsageError(`epsilon must be > 0, got ${epsilon}`);
  return { ...conv, epsilon, inputGradient: attrs.inputGradient ?? true };
}

/** Validates x/filter/vectors and the attributes; returns the kernel attributes. */
function validate(
  x: tf.Tensor,
  filter: tf.Tensor,
  vectors: Record<string, tf.Tensor>,
  attrs: ConvBnReluAttrs,
): ConvBnReluKernelAttrs {
  checkFloat32("x", x);
  checkFloat32("filter", filter);
  const ka = kernelAttrs(attrs);
  const g = convGeometry(x.shape, filter.shape, ka.strides, ka.pad);
  for (const [name, t] of Object.entries(vectors)) checkChannelVector(name, t, g.outC);
  return ka;
}

/**
 * Training mode: y = relu(gamma * (z - mean) / sqrt(var + eps) + beta), z = conv2d(x, filter),
 * batch statistics over N, Ho, Wo. Differentiable w.r.t. x, filter, gamma, beta through y;
 * mean/variance are returned for the running-average update.
 */
export function convBnReluTrain(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  attrs: ConvBnReluAttrs,
): ConvBnReluTrainResult {
  const ka = validate(x, filter, { gamma, beta }, attrs);
  const [y, z, stats] = tf.engine().runKernel(
    CONV_BN_RELU_TRAIN,
    { x, filter, gamma, beta },
    { ...ka } as unknown as NamedAttrMap,
  ) as tf.Tensor[];
  // The gradient tape keeps its own clones of what backward needs (outputsToSave), so our
  // references to z and stats can go.
  const outC = filter.shape[3];
  const [mean, variance] = tf.tidy(() => [
    tf.reshape(tf.slice(stats, [0, 0], [1, outC]), [outC]) as tf.Tensor1D,
    tf.reshape(tf.slice(stats, [1, 0], [1, outC]), [outC]) as tf.Tensor1D,
  ]);
  tf.dispose([z, stats]);
  return { y: y as tf.Tensor4D, mean, variance };
}

/** A layer's running batch-norm statistics and the momentum of their update. */
export interface MovingStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  /** moving' = moving * momentum + batch * (1 - momentum); in [0, 1] (Keras: 0.99). */
  momentum: number;
}

/**
 * A training-mode layer step: convBnReluTrain's y, and the running statistics updated with this
 * batch's (Keras semantics, float32-rounded as tfjs's mul/mul/add), in the statistics pass of
 * the same kernel: no dispatch of their own. `mean` / `variance` are fresh tensors (the caller
 * assigns them to its variables); the inputs are not modified. Not differentiable through the
 * running statistics (they do not affect y).
 */
export function convBnReluTrainWithMovingStats(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  attrs: ConvBnReluAttrs,
  moving: MovingStats,
): { y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const ka = validate(x, filter, {
    gamma,
    beta,
    movingMean: moving.mean,
    movingVariance: moving.variance,
  }, attrs);
  if (!(moving.momentum >= 0 && moving.momentum <= 1)) {
    throw new UsageError(`momentum must be in [0, 1], got ${moving.momentum}`);
  }
  const [y, z, stats, mean, variance] = tf.engine().runKernel(
    CONV_BN_RELU_TRAIN,
    { x, filter, gamma, beta, movingMean: moving.mean, movingVariance: moving.variance },
    { ...ka, momentum: moving.momentum } as unknown as NamedAttrMap,
  ) as tf.Tensor[];
  tf.dispose([z, stats]);
  return {
    y: y as tf.Tensor4D,
    mean: mean as tf.Tensor1D,
    variance: variance as tf.Tensor1D,
  };
}

/** Folds running batch-norm statistics into scale = gamma/sqrt(var+eps), shift = beta-mean*scale. */
export function foldBatchNorm(
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  movingMean: tf.Tensor1D,
  movingVariance: tf.Tensor1D,
  epsilon: number = DEFAULT_EPSILON,
): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(movingVariance, epsilon))) as tf.Tensor1D;
    const shift = tf.sub(beta, tf.mul(movingMean, scale)) as tf.Tensor1D;
    return { scale, shift };
  });
}

/** Inference mode: y = relu(conv2d(x, filter) * scale + shift), batch norm folded, one pass. */
export function convBnReluInfer(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  movingMean: tf.Tensor1D,
  movingVariance: tf.Tensor1D,
  attrs: ConvBnReluAttrs,
): tf.Tensor4D {
  const ka = validate(x, filter, { gamma, beta, movingMean, movingVariance }, attrs);
  const { scale, shift } = foldBatchNorm(gamma, beta, movingMean, movingVariance, ka.epsilon);
  const y = tf.engine().runKernel(
    CONV_BN_RELU_INFER,
    { x, filter, scale, shift },
    { strides: ka.strides, pad: ka.pad, tiles: ka.tiles } as unknown as NamedAttrMap,
  ) as tf.Tensor4D;
  scale.dispose();
  shift.dispose();
  return y;
}

/** Convenience: training or inference mode by flag (inference needs the running statistics). */
export function convBnRelu(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  opts: ConvBnReluOptions,
): ConvBnReluTrainResult | tf.Tensor4D {
  if (opts.training) return convBnReluTrain(x, filter, gamma, beta, opts);
  if (!opts.movingMean || !opts.movingVariance) {
    throw new UsageError("convBnRelu: inference mode needs movingMean and movingVariance");
  }
  return convBnReluInfer(x, filter, gamma, beta, opts.movingMean, opts.movingVariance, opts);
}

/**
 * Kernel name of the backward: inputs {dy, x, filter, gamma, beta, z, stats}, attrs as the forward
 * (ConvBnReluKernelAttrs), outputs [dx, dfilter, dgamma, dbeta].
 */
export const CONV_BN_RELU_TRAIN_GRAD = "ConvBnReluTrainGrad";
/** Inputs and attrs as ConvBnReluTrainGrad; outputs [dz, dfilter, dgamma, dbeta]. */
export const CONV_BN_RELU_TRAIN_PARAM_GRADS = "ConvBnReluTrainParamGrads";
/** Inputs and attrs as ConvBnReluTrainGrad; outputs [dfilter, dgamma, dbeta] (no dz pass). */
export const CONV_BN_RELU_TRAIN_FILTER_GRADS = "ConvBnReluTrainFilterGrads";

/** The kernel attrs from a NamedAttrMap, with the defaults the API fills in. */
export function gradKernelAttrs(attrs: NamedAttrMap = {}): ConvBnReluKernelAttrs {
  return {
    ...convAttrs(attrs),
    epsilon: (attrs.epsilon as number | undefined) ?? DEFAULT_EPSILON,
    inputGradient: (attrs.inputGradient as boolean | undefined) ?? true,
  };
}

/** Runs the backward kernel: [dx, dfilter, dgamma, dbeta] for dy = dLoss/dy. */
export function convBnReluTrainGrad(
  t: Record<keyof ConvBnReluGradTensors, tf.Tensor>,
  attrs: ConvBnReluKernelAttrs,
): [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D] {
  const outs = tf.engine().runKernel(
    CONV_BN_RELU_TRAIN_GRAD,
    t as unknown as tf.NamedTensorMap,
    attrs as unknown as NamedAttrMap,
  ) as tf.Tensor[];
  return outs as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
}

export const convBnReluTrainGradient: tf.GradConfig = {
  kernelName: CONV_BN_RELU_TRAIN,
  inputsToSave: ["x", "filter", "gamma", "beta"],
  outputsToSave: [false, true, true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    // Multi-output kernel: dy = [dL/dy, dL/dz, dL/dstats]; only dL/dy is propagated (see top).
    const dyY = Array.isArray(dy) ? dy[0] : dy;
    const [x, filter, gamma, beta, z, stats] = saved;
    // The parameter gradients and dz run once, eagerly; they live in the backward pass's tidy
    // scope (those tfjs asks for are returned, the rest disposed with it). dx runs only if tfjs
    // calls the x thunk, i.e. if x leads to a variable (not for the model-input layer).
    const ka = gradKernelAttrs(attrs);
    const inputs = { dy: dyY, x, filter, gamma, beta, z, stats };
    const movingGrads = {
      movingMean: () => tf.zerosLike(gamma),
      movingVariance: () => tf.zerosLike(gamma),
    };
    if (!ka.inputGradient) {
      const [dfilter, dgamma, dbeta] = tf.engine().runKernel(
        CONV_BN_RELU_TRAIN_FILTER_GRADS,
        inputs,
        ka as unknown as NamedAttrMap,
      ) as tf.Tensor[];
      return {
        x: () => {
          throw new Error(
            "convBnReluTrain: the gradient w.r.t. x was requested from a layer built with " +
              "inputGradient: false",
          );
        },
        filter: () => dfilter,
        gamma: () => dgamma,
        beta: () => dbeta,
        ...movingGrads,
      };
    }
    const [dz, dfilter, dgamma, dbeta] = tf.engine().runKernel(
      CONV_BN_RELU_TRAIN_PARAM_GRADS,
      { dy: dyY, x, filter, gamma, beta, z, stats },
      ka as unknown as NamedAttrMap,
    ) as tf.Tensor[];
    return {
      x: () => convBackpropData(dz as tf.Tensor4D, filter as tf.Tensor4D, x.shape, ka),
      filter: () => dfilter,
      gamma: () => dgamma,
      beta: () => dbeta,
      ...movingGrads,
    };
  },
};
