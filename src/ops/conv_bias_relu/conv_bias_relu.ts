// Conv + bias + ReLU (no batch norm; the `baseline` model's layers): y = relu(conv2d(x, filter)
// + bias), NHWC float32, strides 1 or 2, `same` or `valid`. One kernel, ConvBiasRelu: on webgpu
// the generated forward view with the biasRelu epilogue (conv_bias_relu_webgpu.ts, conv/passes.ts),
// on cpu the plain-loop reference (conv_bias_relu_ref.ts). Its gradient gets dz (dy masked by y > 0) and dbias from
// one BiasActGrad dispatch (bias_act_grad.ts) and runs the generated backprops as their own kernels (conv_backprop.ts) inside the x and
// filter thunks, so an input that needs no gradient (the images) costs nothing.

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap } from "@tensorflow/tfjs-core";
import { convGeometry } from "../conv/geometry.ts";
import { biasActGrad } from "../bias_act_grad/bias_act_grad.ts";
import {
  type ConvBackpropAttrs,
  convBackpropData,
  convBackpropFilter,
} from "../conv_backprop/conv_backprop.ts";
import { checkChannelVector, checkFloat32, convAttrs, kernelGeometry } from "../conv/attrs.ts";
import type { TilePlan } from "../conv/tile_plan.ts";

/** Kernel: inputs {x, filter, bias}; attrs {strides: [sh, sw], pad}; output y. */
export const CONV_BIAS_RELU = "ConvBiasRelu";

export interface ConvBiasReluAttrs {
  /** [strideH, strideW] or one number for both; 1 or 2. */
  strides: number | [number, number];
  pad: "same" | "valid";
  /** The tile plan the call and its gradient run under (default: the adapter's defaults). */
  tiles?: TilePlan;
}

/** The conv geometry of {x, filter, bias} (all present) under `attrs`. */
export function geometryOf(inputs: tf.NamedTensorInfoMap, attrs: NamedAttrMap = {}) {
  const { x, filter, bias } = inputs;
  if (!x || !filter || !bias) throw new Error(`${CONV_BIAS_RELU}: needs inputs x, filter, bias`);
  return { g: kernelGeometry(x.shape, filter.shape, attrs), x, filter, bias };
}

export const convBiasReluGradient: tf.GradConfig = {
  kernelName: CONV_BIAS_RELU,
  inputsToSave: ["x", "filter"],
  outputsToSave: [true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, filter, y] = saved;
    const a = convAttrs(attrs);
    const { dz: z, dbias } = biasActGrad(Array.isArray(dy) ? dy[0] : dy, y, "relu");
    const dz = z as tf.Tensor4D;
    return {
      x: () => convBackpropData(dz, filter as tf.Tensor4D, x.shape, a),
      filter: () => convBackpropFilter(dz, x as tf.Tensor4D, filter.shape, a),
      bias: () => dbias,
    };
  },
};

/** Checks the op's inputs (dtypes, bias of Cout); the kernel attrs. */
export function validateConvBiasRelu(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  attrs: ConvBiasReluAttrs,
): ConvBackpropAttrs {
  checkFloat32("x", x);
  checkFloat32("filter", filter);
  const a = convAttrs(attrs);
  checkChannelVector("bias", bias, convGeometry(x.shape, filter.shape, a.strides, a.pad).outC);
  return a;
}

/** y = relu(conv2d(x, filter) + bias); differentiable w.r.t. x, filter and bias. */
export function convBiasRelu(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  attrs: ConvBiasReluAttrs,
): tf.Tensor4D {
  const a = validateConvBiasRelu(x, filter, bias, attrs);
  return tf.engine().runKernel(CONV_BIAS_RELU, { x, filter, bias }, {
    ...a,
  } as unknown as NamedAttrMap) as tf.Tensor4D;
}
