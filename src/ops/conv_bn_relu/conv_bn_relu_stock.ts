// The conv + batch-norm + ReLU block built from stock tfjs ops (conv2d, moments, batchNorm,
// relu). It is the baseline our fused kernels are measured against (`--ops stock`, benchmarks)
// and the second reference in tests. Same contract as the fused op in `conv_bn_relu.ts`.

import * as tf from "@tensorflow/tfjs-core";
import type { convBnReluInfer, convBnReluTrain } from "./conv_bn_relu.ts";
import type { TilePlan } from "../conv/tile_plan.ts";
// Its conv2d gradient runs tfjs's Conv2DBackpropFilter, which src/ops/registry.ts replaces with a
// batch-sliced one (conv2d_backprop_filter_sliced/): the stock kernel is wrong on llvmpipe past
// ~65k output rows.

export interface ConvBnReluAttrs {
  /** [strideH, strideW] or one number for both; 1 or 2. */
  strides: number | [number, number];
  pad: "same" | "valid";
  /** Added to the variance before the square root. Default 1e-3 (Keras). */
  epsilon?: number;
  /**
   * false: x never needs a gradient (the model-input layer), so the fused op's backward skips
   * dx and computes dz inside the filter pass (no dz pass). Asking for dx then throws. Default
   * true. The stock chain ignores it.
   */
  inputGradient?: boolean;
  /** The tile plan the fused op and its gradient run under (the stock chain ignores it). */
  tiles?: TilePlan;
}

export const DEFAULT_EPSILON = 1e-3;

/** Training mode output: the activation plus the biased batch statistics over N, H, W. */
export interface ConvBnReluTrainResult {
  y: tf.Tensor4D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

// The stock chains have the fused ops' signatures (conv_bn_relu.ts), checked by their types:
// they are the drop-ins the fused ops are tested and measured against.

/**
 * Training mode: y = relu(gamma * (z - mean) / sqrt(var + eps) + beta), z = conv2d(x, filter),
 * with mean/var taken over N, H, W of z. x is NHWC, filter [KH, KW, Cin, Cout].
 */
export const convBnReluTrainStock: typeof convBnReluTrain = (x, filter, gamma, beta, attrs) =>
  tf.tidy(() => {
    const z = tf.conv2d(x, filter, attrs.strides, attrs.pad);
    const { mean, variance } = tf.moments(z, [0, 1, 2]);
    const eps = attrs.epsilon ?? DEFAULT_EPSILON;
    const y = tf.relu(tf.batchNorm(z, mean, variance, beta, gamma, eps)) as tf.Tensor4D;
    return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  });

/** Inference mode with running statistics: tfjs's fused conv2d, then batchNorm and relu. */
export const convBnReluInferStock: typeof convBnReluInfer = (
  x,
  filter,
  gamma,
  beta,
  movingMean,
  movingVariance,
  attrs,
) =>
  tf.tidy(() => {
    const z = tf.fused.conv2d({ x, filter, strides: attrs.strides, pad: attrs.pad });
    const eps = attrs.epsilon ?? DEFAULT_EPSILON;
    return tf.relu(tf.batchNorm(z, movingMean, movingVariance, beta, gamma, eps)) as tf.Tensor4D;
  });
