// Batched inference on a Split: the one place that feeds images to a model and reads back
// probabilities (shared by evaluation and predict).

import type * as tf from "@tensorflow/tfjs-core";
import { UsageError } from "../errors.ts";
import { CLASS_NAMES, type Split } from "../data/fashion_mnist.ts";
import { imagesToTensor } from "../data/dataset.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

/** The part of a model that evaluation and prediction need (our Model satisfies it). */
export interface InferenceModel {
  /** Softmax probabilities [n, 10] for images [n, 28, 28, 1] in [0, 1]. */
  predict(x: tf.Tensor4D): tf.Tensor2D;
  /** The tile plan its ops run under, where it has one (src/model/model.ts). */
  tiles?: TilePlan;
  dispose(): void;
}

export const DEFAULT_BATCH = 500;

/** Runs the model on every image of `split` in batches; returns [count, 10] probabilities. */
export async function predictProbabilities(
  model: InferenceModel,
  split: Split,
  batchSize = DEFAULT_BATCH,
  what = "model",
): Promise<Float32Array> {
  const k = CLASS_NAMES.length;
  const out = new Float32Array(split.count * k);
  for (let start = 0; start < split.count; start += batchSize) {
    const end = Math.min(split.count, start + batchSize);
    const indices = Int32Array.from({ length: end - start }, (_, i) => start + i);
    const x = imagesToTensor(split, indices);
    let probs: tf.Tensor | undefined;
    try {
      probs = model.predict(x);
      if (probs.shape.length !== 2 || probs.shape[0] !== indices.length || probs.shape[1] !== k) {
        throw new UsageError(
          `${what}: outputs shape [${
            probs.shape.join(", ")
          }], expected [${indices.length}, ${k}] ` +
            `(not a Fashion-MNIST classifier?)`,
        );
      }
      out.set(await probs.data() as Float32Array, start * k);
    } finally {
      x.dispose();
      probs?.dispose();
    }
  }
  return out;
}
