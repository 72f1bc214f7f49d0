// The registration table: every op's tfjs kernels (webgpu, and the cpu reference under the same
// kernel names) and gradients, and every stock tfjs kernel we replace, as named entries. Op modules
// only export their configs; `registerOps()` (called by src/tf/setup.ts and the browser page)
// registers them once. A new op: one folder under src/ops/ and one line here.

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-webgpu";
import type { OpKernels, StockOverride } from "./backend/registration.ts";
import { adamStepKernels } from "./adam_step/adam_step_webgpu.ts";
import { biasActGradKernels } from "./bias_act_grad/bias_act_grad.ts";
import { conv2dBackpropFilterSliced } from "./conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts";
import { convBackpropKernels } from "./conv_backprop/conv_backprop.ts";
import { convBiasReluKernels } from "./conv_bias_relu/conv_bias_relu.ts";
import { convBiasReluPool2Kernels } from "./conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { convBnReluForwardKernels } from "./conv_bn_relu/conv_bn_relu_fwd.ts";
import { convBnReluBackwardKernels } from "./conv_bn_relu/conv_bn_relu_grad.ts";
import { denseBiasActKernels } from "./dense_bias_act/dense_bias_act.ts";
import { seededDropoutKernels } from "./dropout/dropout.ts";
import { maxPool2Kernels } from "./max_pool2/max_pool2.ts";
import { softmaxXentKernels } from "./softmax_xent/softmax_xent.ts";

/** Our ops, by folder. */
export const OPS: Readonly<Record<string, OpKernels>> = {
  "conv_bn_relu (forward)": convBnReluForwardKernels,
  "conv_bn_relu (backward)": convBnReluBackwardKernels,
  conv_bias_relu: convBiasReluKernels,
  conv_bias_relu_pool2: convBiasReluPool2Kernels,
  conv_backprop: convBackpropKernels,
  dense_bias_act: denseBiasActKernels,
  bias_act_grad: biasActGradKernels,
  max_pool2: maxPool2Kernels,
  dropout: seededDropoutKernels,
  softmax_xent: softmaxXentKernels,
  adam_step: adamStepKernels,
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
