// The registration table: every op's tfjs kernels (webgpu, and the cpu reference under the same
// kernel names) and gradients, and every stock tfjs kernel we replace, as named entries. Op modules
// only export their configs; `registerOps()` (called by src/tf/setup.ts and the browser page)
// registers them once. A new op: one folder under src/ops/ and one line here.

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-webgpu";
import type { OpKernels, StockOverride } from "./backend/registration.ts";
import { adamStepCpu } from "./adam_step/adam_step_ref.ts";
import { adamStepWebgpu } from "./adam_step/adam_step_webgpu.ts";
import { biasActGradCpu } from "./bias_act_grad/bias_act_grad_ref.ts";
import { biasActGradWebgpu } from "./bias_act_grad/bias_act_grad_webgpu.ts";
import { conv2dBackpropFilterSliced } from "./conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts";
import { convBackpropDataCpu, convBackpropFilterCpu } from "./conv_backprop/conv_backprop_ref.ts";
import {
  convBackpropDataWebgpu,
  convBackpropFilterWebgpu,
} from "./conv_backprop/conv_backprop_webgpu.ts";
import { convBiasReluGradient } from "./conv_bias_relu/conv_bias_relu.ts";
import { convBiasReluCpu } from "./conv_bias_relu/conv_bias_relu_ref.ts";
import { convBiasReluWebgpu } from "./conv_bias_relu/conv_bias_relu_webgpu.ts";
import { convBiasReluPool2Gradient } from "./conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import {
  convBiasReluPool2Cpu,
  maxPool2ReluBiasGradCpu,
} from "./conv_bias_relu_pool2/conv_bias_relu_pool2_ref.ts";
import {
  convBiasReluPool2Webgpu,
  maxPool2ReluBiasGradWebgpu,
} from "./conv_bias_relu_pool2/conv_bias_relu_pool2_webgpu.ts";
import { convBnReluTrainGradient } from "./conv_bn_relu/conv_bn_relu.ts";
import { convBnReluInferCpu, convBnReluTrainCpu } from "./conv_bn_relu/conv_bn_relu_ref.ts";
import {
  convBnReluFilterGradsCpu,
  convBnReluParamGradsCpu,
  convBnReluTrainGradCpu,
} from "./conv_bn_relu/conv_bn_relu_grad_ref.ts";
import {
  convBnReluFilterGradsWebgpu,
  convBnReluInferWebgpu,
  convBnReluParamGradsWebgpu,
  convBnReluTrainGradWebgpu,
  convBnReluTrainWebgpu,
} from "./conv_bn_relu/conv_bn_relu_webgpu.ts";
import { denseBiasActGradient } from "./dense_bias_act/dense_bias_act.ts";
import {
  denseBackpropInputCpu,
  denseBackpropKernelCpu,
  denseBiasActCpu,
} from "./dense_bias_act/dense_bias_act_ref.ts";
import {
  denseBackpropInputWebgpu,
  denseBackpropKernelWebgpu,
  denseBiasActWebgpu,
} from "./dense_bias_act/dense_bias_act_webgpu.ts";
import { seededDropoutGradient } from "./dropout/dropout.ts";
import { seededDropoutCpu } from "./dropout/dropout_ref.ts";
import { seededDropoutWebgpu } from "./dropout/dropout_webgpu.ts";
import { maxPool2DropoutGradient, maxPool2Gradient } from "./max_pool2/max_pool2.ts";
import { maxPool2Cpu, maxPool2DropoutCpu, maxPool2GradCpu } from "./max_pool2/max_pool2_ref.ts";
import {
  maxPool2DropoutWebgpu,
  maxPool2GradWebgpu,
  maxPool2Webgpu,
} from "./max_pool2/max_pool2_webgpu.ts";
import { softmaxXentGradient } from "./softmax_xent/softmax_xent.ts";
import { softmaxXentCpu, softmaxXentGradCpu } from "./softmax_xent/softmax_xent_ref.ts";
import { softmaxXentGradWebgpu, softmaxXentWebgpu } from "./softmax_xent/softmax_xent_webgpu.ts";

/** Our ops, by folder. */
export const OPS: Readonly<Record<string, OpKernels>> = {
  conv_bn_relu: {
    webgpu: [
      convBnReluTrainWebgpu,
      convBnReluInferWebgpu,
      convBnReluTrainGradWebgpu,
      convBnReluParamGradsWebgpu,
      convBnReluFilterGradsWebgpu,
    ],
    cpu: [
      convBnReluTrainCpu,
      convBnReluInferCpu,
      convBnReluTrainGradCpu,
      convBnReluParamGradsCpu,
      convBnReluFilterGradsCpu,
    ],
    gradients: [convBnReluTrainGradient],
  },
  conv_bias_relu: {
    webgpu: [convBiasReluWebgpu],
    cpu: [convBiasReluCpu],
    gradients: [convBiasReluGradient],
  },
  conv_bias_relu_pool2: {
    webgpu: [convBiasReluPool2Webgpu, maxPool2ReluBiasGradWebgpu],
    cpu: [convBiasReluPool2Cpu, maxPool2ReluBiasGradCpu],
    gradients: [convBiasReluPool2Gradient],
  },
  conv_backprop: {
    webgpu: [convBackpropDataWebgpu, convBackpropFilterWebgpu],
    cpu: [convBackpropDataCpu, convBackpropFilterCpu],
    gradients: [],
  },
  dense_bias_act: {
    webgpu: [denseBiasActWebgpu, denseBackpropInputWebgpu, denseBackpropKernelWebgpu],
    cpu: [denseBiasActCpu, denseBackpropInputCpu, denseBackpropKernelCpu],
    gradients: [denseBiasActGradient],
  },
  bias_act_grad: { webgpu: [biasActGradWebgpu], cpu: [biasActGradCpu], gradients: [] },
  max_pool2: {
    webgpu: [maxPool2Webgpu, maxPool2DropoutWebgpu, maxPool2GradWebgpu],
    cpu: [maxPool2Cpu, maxPool2DropoutCpu, maxPool2GradCpu],
    gradients: [maxPool2Gradient, maxPool2DropoutGradient],
  },
  dropout: {
    webgpu: [seededDropoutWebgpu],
    cpu: [seededDropoutCpu],
    gradients: [seededDropoutGradient],
  },
  softmax_xent: {
    webgpu: [softmaxXentWebgpu, softmaxXentGradWebgpu],
    cpu: [softmaxXentCpu, softmaxXentGradCpu],
    gradients: [softmaxXentGradient],
  },
  adam_step: { webgpu: [adamStepWebgpu], cpu: [adamStepCpu], gradients: [] },
};

/** Stock tfjs kernels replaced by ours, each with its reason. */
export const STOCK_OVERRIDES: readonly StockOverride[] = [conv2dBackpropFilterSliced];

const INSTALLED = Symbol.for("fmnist.stockOverride");
type Marked = tf.KernelConfig & { [INSTALLED]?: true };

/** Replaces one stock kernel (once: a second call finds its own replacement and stops). */
export function installStockOverride(o: StockOverride): void {
  const stock = tf.getKernel(o.kernelName, o.backendName) as Marked | undefined;
  if (!stock) throw new Error(`tfjs-${o.backendName} has no ${o.kernelName} kernel to replace`);
  if (stock[INSTALLED]) return;
  tf.unregisterKernel(o.kernelName, o.backendName);
  tf.registerKernel({ ...o.replace(stock), [INSTALLED]: true } as Marked);
}

let registered = false;

/** Registers every op's kernels and gradients and installs the stock overrides; idempotent. */
export function registerOps(): void {
  if (registered) return;
  registered = true;
  for (const op of Object.values(OPS)) {
    for (const k of [...op.webgpu, ...op.cpu]) tf.registerKernel(k);
    for (const g of op.gradients) tf.registerGradient(g);
  }
  for (const o of STOCK_OVERRIDES) installStockOverride(o);
}
