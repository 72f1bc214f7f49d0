// The training images and one-hot labels on the device, uploaded once per run; a step's batch
// is gathered there from its shuffled indices (one small int32 upload) instead of building and
// uploading 400 KB of pixels per step at batch 128. The resident copy holds exactly the floats
// imagesToTensor / labelsToOneHot make (the same `/ 255` per pixel), and gather copies values,
// so every batch is bit-identical to the per-step upload. Size: 60,000 x 784 float32 = 188 MB
// for the full training split (+2.4 MB of labels).

import * as tf from "@tensorflow/tfjs-core";
import { imagesToTensor, labelsToOneHot } from "../data/dataset.ts";
import type { Split } from "../data/fashion_mnist.ts";
import { stepInput } from "../tf/step_inputs.ts";

/** The step input that carries a batch's indices into the split. */
export const BATCH_INDICES = "batch indices";

export interface BatchSource {
  /** The batch at `idx` (indices into the split): images [n, 28, 28, 1] and one-hot labels. */
  batch(idx: Int32Array): { x: tf.Tensor4D; y: tf.Tensor2D };
  /** Throws a RangeError naming the first index outside the split (batch() checks too). */
  check(idx: Int32Array): void;
  dispose(): void;
}

/** Builds each batch on the host and uploads it (what the loop did before the resident data). */
export function hostBatches(split: Split): BatchSource {
  return {
    batch: (idx) => ({ x: imagesToTensor(split, idx), y: labelsToOneHot(split, idx) }),
    check: (idx) => checkIndices(idx, split.count),
    dispose: () => {},
  };
}

/** The whole split resident on the device; batches gathered there. */
export function deviceBatches(split: Split): BatchSource {
  const all = Int32Array.from({ length: split.count }, (_, i) => i);
  const images = imagesToTensor(split, all);
  const labels = labelsToOneHot(split, all);
  return {
    batch: (idx) =>
      tf.tidy(() => {
        checkIndices(idx, split.count);
        // A captured step (src/tf/step_capture.ts) writes the next batch's indices here.
        const at = stepInput(Int32Array.from(idx), { name: BATCH_INDICES });
        return { x: tf.gather(images, at) as tf.Tensor4D, y: tf.gather(labels, at) as tf.Tensor2D };
      }),
    check: (idx) => checkIndices(idx, split.count),
    dispose: () => tf.dispose([images, labels]),
  };
}

function checkIndices(idx: Int32Array, count: number): void {
  for (const i of idx) {
    if (!(i >= 0 && i < count)) throw new RangeError(`index ${i} outside 0..${count - 1}`);
  }
}
