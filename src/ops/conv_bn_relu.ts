// TEMPORARY (replaced by the fused WGSL op, issue #3): forwards to the stock composite so that
// models can be written against the final signatures while the kernels are being built.

import type * as tf from "@tensorflow/tfjs-core";
import {
  type ConvBnReluAttrs,
  convBnReluInferStock,
  type ConvBnReluTrainResult,
  convBnReluTrainStock,
} from "./conv_bn_relu_stock.ts";

export function convBnReluTrain(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  attrs: ConvBnReluAttrs,
): ConvBnReluTrainResult {
  return convBnReluTrainStock(x, filter, gamma, beta, attrs);
}

export function convBnReluInfer(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  movingMean: tf.Tensor1D,
  movingVariance: tf.Tensor1D,
  attrs: ConvBnReluAttrs,
): tf.Tensor4D {
  return convBnReluInferStock(x, filter, gamma, beta, movingMean, movingVariance, attrs);
}
