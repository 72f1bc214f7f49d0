// Seeded shuffling, stratified train/validation split, batching and tensor conversion.
//
// Everything random takes an explicit seed or rng (src/random.ts) so a run can be repeated exactly.

import * as tf from "@tensorflow/tfjs-core";
import { createRng } from "../random.ts";
import { NUM_CLASSES, PIXELS, type Split } from "./fashion_mnist.ts";

/** Shuffles `array` in place (Fisher-Yates) and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(
  array: T,
  rng: () => number,
): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A random permutation of 0..n-1. */
export function shuffledIndices(n: number, rng: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return shuffleInPlace(out, rng);
}

/** Items per class (index = label). */
export function classCounts(labels: ArrayLike<number>, numClasses = NUM_CLASSES): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/**
 * Splits indices 0..n-1 into train and validation so every class keeps its share: each class's
 * indices are shuffled with the seed and round(valFraction * classCount) go to validation. Both
 * lists come back sorted ascending.
 */
export function stratifiedSplit(
  labels: Uint8Array,
  valFraction: number,
  seed: number,
): { train: Int32Array; val: Int32Array } {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`validation fraction must be in [0, 1), got ${valFraction}`);
  }
  const rng = createRng(seed);
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    const list = byClass.get(label);
    if (list) list.push(i);
    else byClass.set(label, [i]);
  });
  const train: number[] = [];
  const val: number[] = [];
  for (const label of [...byClass.keys()].sort((x, y) => x - y)) {
    const members = shuffleInPlace(byClass.get(label)!, rng);
    const nVal = Math.round(valFraction * members.length);
    val.push(...members.slice(0, nVal));
    train.push(...members.slice(nVal));
  }
  return {
    train: Int32Array.from(train).sort(),
    val: Int32Array.from(val).sort(),
  };
}

/** The first `n` items of a split (views, no copy): `--limit`. */
export function limitSplit(split: Split, n: number): Split {
  if (n >= split.count) return split;
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`limit must be >= 0, got ${n}`);
  return {
    images: split.images.subarray(0, n * PIXELS),
    labels: split.labels.subarray(0, n),
    count: n,
  };
}

/** The images at `indices` as one [n, 28, 28, 1] float32 tensor scaled to [0, 1]. */
export function imagesToTensor(split: Split, indices: ArrayLike<number>): tf.Tensor4D {
  const n = indices.length;
  const out = new Float32Array(n * PIXELS);
  for (let k = 0; k < n; k++) {
    const src = checkIndex(split, indices[k]) * PIXELS;
    const dst = k * PIXELS;
    for (let p = 0; p < PIXELS; p++) out[dst + p] = split.images[src + p] / 255;
  }
  return tf.tensor4d(out, [n, 28, 28, 1], "float32");
}

/** The labels at `indices` as a one-hot [n, 10] float32 tensor. */
export function labelsToOneHot(split: Split, indices: ArrayLike<number>): tf.Tensor2D {
  const n = indices.length;
  const out = new Float32Array(n * NUM_CLASSES);
  for (let k = 0; k < n; k++) {
    out[k * NUM_CLASSES + split.labels[checkIndex(split, indices[k])]] = 1;
  }
  return tf.tensor2d(out, [n, NUM_CLASSES], "float32");
}

function checkIndex(split: Split, i: number): number {
  if (!(i >= 0 && i < split.count)) {
    throw new RangeError(`index ${i} outside 0..${split.count - 1}`);
  }
  return i;
}

/**
 * Mini-batches over `indices` in a fresh random order on every call (one epoch). Batches are
 * views into a single permutation, so memory is one copy of `indices`; the last batch may be
 * smaller than `batchSize`.
 */
export function batchIterator(
  indices: Int32Array,
  batchSize: number,
  rng: () => number,
): Generator<Int32Array> {
  if (!(Number.isInteger(batchSize) && batchSize > 0)) {
    throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  }
  return batches(shuffleInPlace(indices.slice(), rng), batchSize);
}

function* batches(order: Int32Array, batchSize: number): Generator<Int32Array> {
  for (let start = 0; start < order.length; start += batchSize) {
    yield order.subarray(start, start + batchSize);
  }
}
