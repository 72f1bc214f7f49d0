// Training loss and accuracy counter of the step as our own kernels (float32):
//   SoftmaxXent      inputs {logits (N, C), labels (N, C)}, attrs {smoothing};
//                    outputs [loss (scalar), correct (scalar)]: mean smoothed cross-entropy and
//                    the count of rows with argmax(logits) == argmax(labels)
//   SoftmaxXentGrad  inputs {logits, labels, dy}, attrs {smoothing}; output dlogits (N, C)
// 2 dispatches per step (src/ops/softmax_xent/softmax_xent_loss.wgsl, one multi-output pass for both values,
// and softmax_xent_grad.wgsl; 3 until the loss pass wrote both) where crossEntropy +
// countCorrect (src/train/step.ts) and their backward issue ~45 tfjs ops.
// Same math as crossEntropy: t = labels * (1 - s) + s / C, loss = -mean_r sum_c t (l - lse).
// The cpu reference (softmax_xent_ref.ts, float64 accumulation) serves the cpu backend and the
// tests; the WebGPU kernels are in softmax_xent_webgpu.ts.
// Measured (bench/probes/step_parts_probe.ts, llvmpipe, batch 128): loss + count + dlogits 21.0 ms and
// 41 dispatches with tfjs ops, 14.0 ms and 5 here (that probe runs the forward twice).

import * as tf from "@tensorflow/tfjs-core";
import type { GradConfig } from "@tensorflow/tfjs-core";

export const SOFTMAX_XENT = "SoftmaxXent";
export const SOFTMAX_XENT_GRAD = "SoftmaxXentGrad";

/** Mean cross-entropy and correct count of a batch; differentiable w.r.t. the logits. */
export function softmaxCrossEntropyWithCount(
  labels: tf.Tensor2D,
  logits: tf.Tensor2D,
  smoothing = 0,
): { loss: tf.Scalar; correct: tf.Scalar } {
  if (logits.rank !== 2 || labels.shape.join() !== logits.shape.join()) {
    throw new Error(`softmaxCrossEntropy: logits [${logits.shape}], labels [${labels.shape}]`);
  }
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`label smoothing ${smoothing}`);
  if (logits.dtype !== "float32") throw new Error(`softmaxCrossEntropy: logits ${logits.dtype}`);
  // Labels may be int32 (tf.oneHot): the kernels convert (f32(...)) as they read.
  const [loss, correct] = tf.engine().runKernel(SOFTMAX_XENT, { logits, labels }, {
    smoothing,
  }) as tf.Scalar[];
  return { loss, correct };
}

/** The smoothing attr as both backends' kernels use it (float32). */
export const smoothingOf = (attrs: unknown) =>
  Math.fround((attrs as { smoothing: number }).smoothing);

export const softmaxXentGradient: GradConfig = {
  kernelName: SOFTMAX_XENT,
  inputsToSave: ["logits", "labels"],
  gradFunc: (dy, saved, attrs) => {
    const [logits, labels] = saved;
    // dy = [dLoss, dCorrect]; the count is not differentiable.
    const dLoss = Array.isArray(dy) ? dy[0] : dy;
    return {
      logits: () =>
        tf.engine().runKernel(SOFTMAX_XENT_GRAD, { logits, labels, dy: dLoss }, {
          ...(attrs as unknown as Record<string, number>),
        }) as tf.Tensor,
      labels: () => tf.zerosLike(labels),
    };
  },
};
