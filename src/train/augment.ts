// Training-batch augmentation with tensor ops, so it runs where the batch lives (the GPU):
// a per-sample random shift (zero pad + crop) and horizontal flip folded into one gather, then
// random erasing (a zeroed rectangle, Zhong et al. 2017) as a broadcast mask. Per-sample
// parameters are drawn in JS from a seeded Rng (n numbers, not n*784), so runs are reproducible.

import * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "../random.ts";

export interface AugmentOptions {
  /** Largest shift in pixels in each direction (0 = none). */
  maxShift?: number;
  /** Flip left-right with probability 1/2. */
  flip?: boolean;
  /** Probability of erasing one rectangle per image (0 = never). */
  eraseProb?: number;
  /** Erased area as a fraction of the image: [min, max]. */
  eraseArea?: [number, number];
}

export const DEFAULT_AUGMENT: Required<AugmentOptions> = {
  maxShift: 2,
  flip: true,
  eraseProb: 0.5,
  eraseArea: [0.02, 0.15],
};

/** Per-sample parameters, drawn in a fixed order from `rng`. */
export interface AugmentParams {
  dy: Int32Array;
  dx: Int32Array;
  flip: Int32Array;
  /** Erase rectangle rows [r0, r1) and columns [c0, c1); empty when r0 == r1. */
  r0: Int32Array;
  r1: Int32Array;
  c0: Int32Array;
  c1: Int32Array;
}

export function drawAugmentParams(
  n: number,
  h: number,
  w: number,
  rng: Rng,
  opts: AugmentOptions = {},
): AugmentParams {
  const o = { ...DEFAULT_AUGMENT, ...opts };
  const p: AugmentParams = {
    dy: new Int32Array(n),
    dx: new Int32Array(n),
    flip: new Int32Array(n),
    r0: new Int32Array(n),
    r1: new Int32Array(n),
    c0: new Int32Array(n),
    c1: new Int32Array(n),
  };
  for (let i = 0; i < n; i++) {
    p.dy[i] = rng.int(0, 2 * o.maxShift);
    p.dx[i] = rng.int(0, 2 * o.maxShift);
    p.flip[i] = o.flip && rng.next() < 0.5 ? 1 : 0;
    if (o.eraseProb > 0 && rng.next() < o.eraseProb) {
      const area = (o.eraseArea[0] + rng.next() * (o.eraseArea[1] - o.eraseArea[0])) * h * w;
      const aspect = Math.exp(Math.log(0.3) + rng.next() * (Math.log(3.3) - Math.log(0.3)));
      const eh = Math.min(h, Math.max(1, Math.round(Math.sqrt(area * aspect))));
      const ew = Math.min(w, Math.max(1, Math.round(Math.sqrt(area / aspect))));
      p.r0[i] = rng.int(0, h - eh);
      p.c0[i] = rng.int(0, w - ew);
      p.r1[i] = p.r0[i] + eh;
      p.c1[i] = p.c0[i] + ew;
    }
  }
  return p;
}

/** Applies shift, flip and erasing to a batch [N, H, W, C]; returns a new tensor. */
export function augmentBatch(
  x: tf.Tensor4D,
  rng: Rng,
  opts: AugmentOptions = {},
): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const shift = opts.maxShift ?? DEFAULT_AUGMENT.maxShift;
  const p = drawAugmentParams(n, h, w, rng, opts);
  return applyAugmentParams(x, p, shift);
}

export function applyAugmentParams(
  x: tf.Tensor4D,
  p: AugmentParams,
  maxShift: number,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const ph = h + 2 * maxShift;
    const pw = w + 2 * maxShift;
    const padded = tf.pad(x, [[0, 0], [maxShift, maxShift], [maxShift, maxShift], [0, 0]]);
    const rows = tf.reshape(tf.range(0, h, 1, "int32"), [1, h, 1]);
    const cols = tf.reshape(tf.range(0, w, 1, "int32"), [1, 1, w]);
    // Plain JS numbers would promote int32 index math to float32.
    const i32 = (v: number) => tf.scalar(v, "int32");
    const perSample = (a: Int32Array) => tf.tensor3d(a, [n, 1, 1], "int32");
    // Output pixel (i, j) reads padded pixel (i + dy, j' + dx), j' = flip ? w - 1 - j : j.
    const flippedCols = tf.add(
      cols,
      tf.mul(perSample(p.flip), tf.sub(i32(w - 1), tf.mul(cols, i32(2)))),
    );
    const srcRow = tf.add(rows, perSample(p.dy));
    const srcCol = tf.add(flippedCols, perSample(p.dx));
    const base = tf.mul(tf.reshape(tf.range(0, n, 1, "int32"), [n, 1, 1]), i32(ph * pw));
    const index = tf.reshape(tf.add(base, tf.add(tf.mul(srcRow, i32(pw)), srcCol)), [-1]);
    const moved = tf.reshape(tf.gather(tf.reshape(padded, [n * ph * pw, c]), index), [n, h, w, c]);
    const inRows = tf.logicalAnd(
      tf.greaterEqual(rows, perSample(p.r0)),
      tf.less(rows, perSample(p.r1)),
    );
    const inCols = tf.logicalAnd(
      tf.greaterEqual(cols, perSample(p.c0)),
      tf.less(cols, perSample(p.c1)),
    );
    const erase = tf.reshape(tf.logicalAnd(inRows, inCols), [n, h, w, 1]);
    return tf.where(erase, tf.zerosLike(moved), moved) as tf.Tensor4D;
  });
}
