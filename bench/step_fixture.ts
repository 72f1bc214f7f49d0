// The training step that the step benchmarks time (bench/winograd_step_ab.ts,
// bench/probes/submit_probe.ts): MODEL with fused ops, our Adam and the metrics step, on one
// fixed random batch. bench/step_ab.ts keeps its own copy on purpose: it is copied into old
// trees' checkouts and may import nothing of this tree.

import * as tf from "@tensorflow/tfjs-core";
import { createModel, type Model, type ModelName } from "../src/model/model.ts";
import { makeTrainStepWithMetrics } from "../src/train/step.ts";
import { createAdam } from "../src/train/optimizer.ts";

/** When one step's call returned (issue) and when its loss and accuracy were read back (wall). */
export interface StepTimes {
  issueMs: number;
  wallMs: number;
}

/** The model, and a function running one of its training steps on a fixed batch of `batch` images. */
export function fixedBatchStep(
  modelName: ModelName,
  batch: number,
): { model: Model; step: () => Promise<StepTimes> } {
  const model = createModel(modelName, { ops: "fused", seed: 1, l2: 1e-4 });
  const step = makeTrainStepWithMetrics(model, createAdam(model, 1e-3));
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
  const y = tf.tidy(() =>
    tf.cast(tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 2) as tf.Tensor1D, 10), "float32")
  ) as tf.Tensor2D;
  const run = async () => {
    const t0 = performance.now();
    const [l, c] = tf.tidy(() => {
      const r = step(x, y);
      return [r.loss, r.correct];
    });
    const t1 = performance.now();
    await l.data();
    await c.data();
    const t2 = performance.now();
    tf.dispose([l, c]);
    return { issueMs: t1 - t0, wallMs: t2 - t0 };
  };
  return { model, step: run };
}
