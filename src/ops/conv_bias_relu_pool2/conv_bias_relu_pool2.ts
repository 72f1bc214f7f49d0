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
// Where the adapter caps loops (backend/loop_cap.ts; lavapipe 22), past 960,000 windows (the cap over 16
// lanes) the gradient runs the two separate kernels instead. The cpu kernels compose the references (conv_bias_relu_ref.ts,
// max_pool2_ref.ts, bias_act_grad_ref.ts).

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap } from "@tensorflow/tfjs-core";
import { UsageError } from "../../errors.ts";
import { convBackpropData, convBackpropFilter } from "../conv_backprop/conv_backprop.ts";
import {
  type ConvBiasReluAttrs,
  geometryOf,
  validateConvBiasRelu,
} from "../conv_bias_relu/conv_bias_relu.ts";
import { MAX_POOL2_GRAD } from "../max_pool2/max_pool2.ts";
import { maxPool2Shape } from "../max_pool2/max_pool2_ref.ts";
import { biasActGrad } from "../bias_act_grad/bias_act_grad.ts";
import { convAttrs } from "../conv/attrs.ts";
import { CAPPED_LOOP_BUDGET, loopCapped } from "../backend/loop_cap.ts";

export const CONV_BIAS_RELU_POOL2 = "ConvBiasReluPool2";
export const MAX_POOL2_RELU_BIAS_GRAD = "MaxPool2ReluBiasGrad";

/**
 * Windows the gradient kernel's loop allows where the adapter caps loops (backend/loop_cap.ts): 16 lanes
 * x 60,000 iterations (lavapipe 22: 65,535).
 */
export const POOL_GRAD_MAX_WINDOWS = 16 * CAPPED_LOOP_BUDGET;

/** POOL_GRAD_MAX_WINDOWS where loops are capped, unbounded where they run to the end. */
export function poolGradMaxWindows(): number {
  return loopCapped() ? POOL_GRAD_MAX_WINDOWS : Number.POSITIVE_INFINITY;
}
/** Windows of the ceil grid the gradient pass walks: N x ceil(H / 2) x ceil(W / 2). */
export function windowsOf(shape: readonly number[]): number {
  return shape[0] * Math.ceil(shape[1] / 2) * Math.ceil(shape[2] / 2);
}

/** dy (pooled) and y (N, H, W, C), checked against each other. */
export function gradInputs(inputs: tf.NamedTensorInfoMap) {
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

/** dz and dbias from the pooled gradient: one pass, or the two separate kernels past the cap. */
function poolReluBiasGrad(dy: tf.Tensor, y: tf.Tensor): { dz: tf.Tensor; dbias: tf.Tensor } {
  const backend = tf.getBackend();
  if ((backend === "webgpu" || backend === "cpu") && windowsOf(y.shape) <= poolGradMaxWindows()) {
    const [dz, dbias] = tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, { dy, y }) as tf.Tensor[];
    return { dz, dbias };
  }
  const routed = tf.engine().runKernel(MAX_POOL2_GRAD, { dy, x: y }) as tf.Tensor;
  return biasActGrad(routed, y, "relu");
}

export const convBiasReluPool2Gradient: tf.GradConfig = {
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
