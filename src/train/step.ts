// One optimizer step, free of logging and I/O so the benchmarks can time exactly this.
//
// Weight decay is L2 added to the loss (Keras `kernel_regularizer=l2(λ)`: λ·Σw² over conv and
// dense kernels, via `model.regularizationLoss()`), not decoupled AdamW: with Adam the penalty's
// gradient is rescaled per weight like any other gradient. With FusedAdam (src/train/optimizer.ts)
// the optimizer adds the penalty's gradient l2 * 2w itself and the loss leaves it out.

import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../model/model.ts";
import { FusedAdam } from "./optimizer.ts";
import { softmaxCrossEntropyWithCount } from "../ops/softmax_xent/softmax_xent.ts";
import { deferSubmits } from "../tf/submit.ts";

export interface TrainStepOptions {
  /** Label smoothing for the cross-entropy (0 = none). */
  labelSmoothing?: number;
}

export interface StepResult {
  /** Mean cross-entropy over the batch (without the L2 penalty). */
  loss: tf.Scalar;
  /** Number of correctly classified examples in the batch. */
  correct: tf.Scalar;
}

/**
 * Mean softmax cross-entropy, labels smoothed as y * (1 - s) + s / classes. Written from
 * logSumExp rather than `tf.losses.softmaxCrossEntropy`: that op's customGrad saves a fresh
 * tensor, which tfjs's leak check (on under the IS_TEST flag) reports as a leak.
 */
export function crossEntropy(
  yOneHot: tf.Tensor2D,
  logits: tf.Tensor2D,
  labelSmoothing = 0,
): tf.Scalar {
  return tf.tidy(() => {
    const classes = yOneHot.shape[1];
    const target = labelSmoothing > 0
      ? tf.add(tf.mul(yOneHot, 1 - labelSmoothing), labelSmoothing / classes)
      : yOneHot;
    const logProbs = tf.sub(logits, tf.logSumExp(logits, 1, true));
    return tf.neg(tf.mean(tf.sum(tf.mul(target, logProbs), 1)));
  });
}

/** Number of rows where argmax(logits) == argmax(labels). */
export function countCorrect(logits: tf.Tensor2D, yOneHot: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() =>
    tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(yOneHot, 1)), "float32"))
  );
}

/** The training loop's step: loss and the batch's correct count (for the running accuracy). */
export function makeTrainStepWithMetrics(
  model: Model,
  optimizer: tf.Optimizer,
  opts: TrainStepOptions = {},
): (x: tf.Tensor4D, yOneHot: tf.Tensor2D) => StepResult {
  const smoothing = opts.labelSmoothing ?? 0;
  const fusedL2 = optimizer instanceof FusedAdam;
  // Our loss kernels go with our conv ops; `--ops stock` keeps the whole tfjs composite.
  const fusedLoss = model.config.ops === "fused";
  if (fusedL2 && model.config.l2 > 0 && !optimizer.appliesL2Of(model)) {
    throw new Error("FusedAdam was not made for this model's L2 penalty (use createAdam(model))");
  }
  // Encoded only: the caller's submitPending() or read-back submits it (src/tf/submit.ts).
  return (x, yOneHot) =>
    deferSubmits(() => {
      let loss: tf.Scalar | undefined;
      let correct: tf.Scalar | undefined;
      const total = optimizer.minimize(
        () => {
          const logits = model.apply(x, true);
          let ce: tf.Scalar;
          if (fusedLoss) { // 3 dispatches (src/ops/softmax_xent/softmax_xent.ts) instead of ~45 tfjs ops
            const r = softmaxCrossEntropyWithCount(yOneHot, logits, smoothing);
            correct = tf.keep(r.correct);
            ce = r.loss;
          } else {
            correct = tf.keep(countCorrect(logits, yOneHot));
            ce = crossEntropy(yOneHot, logits, smoothing);
          }
          loss = tf.keep(ce);
          const penalty = fusedL2 ? null : model.regularizationLoss();
          return penalty ? tf.add(ce, penalty) : ce;
        },
        true,
        model.trainableVariables,
      );
      if (total !== loss) total?.dispose(); // without a penalty the cost is `loss` itself
      return { loss: loss!, correct: correct! };
    });
}

/** Contract: `(x, yOneHot) => loss` doing one optimizer step (see `makeTrainStepWithMetrics`). */
export function makeTrainStep(
  model: Model,
  optimizer: tf.Optimizer,
  opts: TrainStepOptions = {},
): (x: tf.Tensor4D, yOneHot: tf.Tensor2D) => tf.Scalar {
  const step = makeTrainStepWithMetrics(model, optimizer, opts);
  return (x, yOneHot) => {
    const { loss, correct } = step(x, yOneHot);
    correct.dispose();
    return loss;
  };
}
