// Nearest-centroid classifier: a training-free baseline (about 68% test accuracy on Fashion-MNIST)
// with the same `predict` interface as our CNNs. The evaluation tests use it as a real, cheap model
// whose mistakes (Shirt vs T-shirt/top, Pullover vs Coat) look like a CNN's.

import * as tf from "@tensorflow/tfjs-core";
import type { Split } from "../../src/data/fashion_mnist.ts";
import type { InferenceModel } from "../../src/eval/inference.ts";

/**
 * Class means of `split` (pixels in [0, 1]); `predict` gives softmax(-beta * squared distance).
 * `beta` only sharpens the probabilities; the predicted class is the nearest centroid either way.
 */
export function nearestCentroidModel(split: Split, numClasses = 10, beta = 0.05): InferenceModel {
  const pixels = split.images.length / split.count;
  const sums = new Float64Array(numClasses * pixels);
  const counts = new Float64Array(numClasses);
  for (let i = 0; i < split.count; i++) {
    const c = split.labels[i];
    counts[c]++;
    for (let p = 0; p < pixels; p++) sums[c * pixels + p] += split.images[i * pixels + p] / 255;
  }
  const means = Float32Array.from(sums, (s, i) => s / Math.max(1, counts[Math.floor(i / pixels)]));
  const centroids = tf.tensor2d(means, [numClasses, pixels]);
  const centroidNorms = tf.tidy(() => tf.sum(tf.square(centroids), 1));
  return {
    predict: (x) =>
      tf.tidy(() => {
        const flat = tf.reshape(x, [x.shape[0], pixels]) as tf.Tensor2D;
        // |x - c|^2 = |x|^2 - 2 x.c + |c|^2
        const dist = tf.add(
          tf.sub(
            tf.sum(tf.square(flat), 1, true),
            tf.mul(2, tf.matMul(flat, centroids, false, true)),
          ),
          centroidNorms,
        );
        return tf.softmax(tf.mul(-beta, dist)) as tf.Tensor2D;
      }),
    dispose: () => {
      centroids.dispose();
      centroidNorms.dispose();
    },
  };
}
