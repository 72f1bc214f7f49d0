// Validation after each epoch: mean loss and accuracy of the model in inference mode over the
// held-out indices of the training split.

import * as tf from "@tensorflow/tfjs-core";
import { imagesToTensor, labelsToOneHot } from "../data/dataset.ts";
import type { Split } from "../data/fashion_mnist.ts";
import type { Model } from "../model/model.ts";
import { countCorrect, crossEntropy } from "./step.ts";

/** Mean loss and accuracy over `indices`, inference mode, in batches of 500; NaN when empty. */
export async function evaluate(
  model: Model,
  split: Split,
  indices: Int32Array,
  batch = 500,
): Promise<{ loss: number; acc: number }> {
  if (indices.length === 0) return { loss: NaN, acc: NaN };
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < indices.length; start += batch) {
    const idx = indices.subarray(start, start + batch);
    const [l, c] = tf.tidy(() => {
      const x = imagesToTensor(split, idx);
      const y = labelsToOneHot(split, idx);
      const logits = model.apply(x, false);
      return [tf.mul(crossEntropy(y, logits), idx.length), countCorrect(logits, y)];
    });
    lossSum += (await l.data())[0];
    correct += (await c.data())[0];
    tf.dispose([l, c]);
  }
  return { loss: lossSum / indices.length, acc: correct / indices.length };
}
