// Inverted dropout as one kernel, SeededDropout (webgpu: dropout_webgpu.ts and dropout.wgsl;
// cpu: the reference in dropout_ref.ts): y = x * keep / (1 - rate), the mask drawn by a counter-based generator, an
// integer hash of (seed, element index) computed identically in WGSL and here, so the webgpu
// and cpu backends drop the same elements bit for bit. The gradient is the same kernel on dy
// with the same seed (the mask is regenerated, nothing saved), so dropout costs 1 dispatch
// forward and 1 backward, with no host work beyond the uniforms.
//
// tf.dropout (the `--ops stock` path) draws a float32 uniform tensor of x's size on the host
// (tfjs's randomUniform: a seedrandom alea call per element), uploads it, and runs add, floor,
// div and mul on it: 4 dispatches forward and 1 backward. Measured on enhanced (two dropouts,
// [N, 3136] and [N, 128]; llvmpipe, loaded 2-core machine): 6 dispatches fewer per training
// step; at batch 128 the host-side noise draw alone is 2.7-3.4 ms per step and issuing
// both tf.dropout calls 4-13 ms, issuing both SeededDropout calls 0.06-0.2 ms. On llvmpipe the
// whole step's CPU time is unchanged within noise (the convolutions dominate); the saving is
// host time, which on a GPU is most of a small CNN's step. The mask lives in
// src/ops/wgsl/dropout_mask.wgsl so that other passes can apply it: the max-pool does
// (maxPool2Dropout, max_pool2.ts), so enhanced's first dropout costs no dispatch at all.
//
// Keep decision: bits >= threshold with threshold = round(rate * 2^32), so P(drop) = rate to
// within 2^-33. Seeds are any uint32 (the model's Rng hands out 31-bit ones); resumed runs draw
// the same seeds, hence the same masks. NaN and Inf in x propagate as in tf.dropout (x * 0).

import * as tf from "@tensorflow/tfjs-core";
import type { GradConfig } from "@tensorflow/tfjs-core";
import { UsageError } from "../../errors.ts";

/**
 * Kernel: inputs {x, dropoutKey}; attrs {rate, seed}; output y (x's shape). dropoutKey is int32
 * [1], the bits of dropoutKeyOf(seed): the webgpu kernel reads the key from it, the cpu kernel
 * from the seed.
 */
export const SEEDED_DROPOUT = "SeededDropout";

export interface DropoutAttrs {
  /** Drop probability in [0, 1). */
  rate: number;
  /** Any uint32. */
  seed: number;
}

/** Wellons' lowbias32 finaliser (the same lines as hash32 in src/ops/dropout/dropout.wgsl). */
export function hash32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The per-call constants both kernels use: hashed key, drop threshold, float32 scale. */
export function dropoutConstants(
  a: DropoutAttrs,
): { key: number; threshold: number; scale: number } {
  return {
    key: hash32((a.seed ^ 0x9e3779b9) >>> 0),
    threshold: Math.min(2 ** 32 - 1, Math.round(a.rate * 2 ** 32)),
    // tf.dropout's multiplier: 1 / keepProb in float32.
    scale: Math.fround(1 / Math.fround(1 - a.rate)),
  };
}

/** The mask's key for `seed`, as the int32 bits a dropoutKey tensor holds. */
export function dropoutKeyOf(seed: number): number {
  return dropoutConstants({ rate: 0, seed }).key | 0;
}

/** A dropoutKey input for `seed`. */
export function dropoutKeyTensor(seed: number): tf.Tensor1D {
  return tf.tensor1d(Int32Array.of(dropoutKeyOf(seed)), "int32");
}

/** Rate in [0, 1) and a uint32 seed, or a one-line error. */
export function checkDropoutAttrs(a: DropoutAttrs) {
  if (!(a.rate >= 0 && a.rate < 1)) {
    throw new UsageError(`dropout rate must be in [0, 1), got ${a.rate}`);
  }
  if (!Number.isInteger(a.seed) || a.seed < 0 || a.seed > 0xffffffff) {
    throw new UsageError(`dropout seed must be a uint32, got ${a.seed}`);
  }
}

/**
 * Inverted dropout of `x` (float32, any shape) with mask seed `seed`; differentiable. `key`:
 * dropoutKeyTensor(seed) when the caller has one (a step input), else made here.
 */
export function dropout<T extends tf.Tensor>(
  x: T,
  rate: number,
  seed: number,
  key?: tf.Tensor1D,
): T {
  if (x.dtype !== "float32") throw new UsageError(`dropout: x must be float32, got ${x.dtype}`);
  checkDropoutAttrs({ rate, seed });
  const dropoutKey = key ?? dropoutKeyTensor(seed);
  try {
    return tf.engine().runKernel(SEEDED_DROPOUT, { x, dropoutKey }, { rate, seed }) as T;
  } finally {
    if (dropoutKey !== key) dropoutKey.dispose();
  }
}

export const seededDropoutGradient: GradConfig = {
  kernelName: SEEDED_DROPOUT,
  inputsToSave: ["dropoutKey"],
  gradFunc: (dy, saved, attrs) => ({
    x: () =>
      tf.engine().runKernel(SEEDED_DROPOUT, {
        x: Array.isArray(dy) ? dy[0] : dy,
        dropoutKey: saved[0],
      }, { ...(attrs as unknown as Record<string, number>) }) as tf.Tensor,
  }),
};
