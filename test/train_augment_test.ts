// Augmentation: each transform checked against a plain-JS expectation on tiny batches (cpu).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { Rng } from "../src/random.ts";
import {
  applyAugmentParams,
  augmentBatch,
  type AugmentParams,
  drawAugmentParams,
} from "../src/train/augment.ts";

const N = 3, H = 6, W = 5;

function ramp(): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from({ length: N * H * W }, (_, i) => i + 1), [N, H, W, 1]);
}

function params(over: Partial<AugmentParams>): AugmentParams {
  const z = () => new Int32Array(N);
  return { dy: z(), dx: z(), flip: z(), r0: z(), r1: z(), c0: z(), c1: z(), ...over };
}

const fill = (v: number) => new Int32Array(N).fill(v);

Deno.test("augment: zero shift, no flip, no erase is the identity", async () => {
  await initTf("cpu");
  const x = ramp();
  const y = applyAugmentParams(x, params({ dy: fill(2), dx: fill(2) }), 2); // offset = pad
  assert.deepEqual(await y.data(), await x.data());
  tf.dispose([x, y]);
});

Deno.test("augment: flip reverses columns; shift moves rows and fills with zeros", async () => {
  await initTf("cpu");
  const x = ramp();
  const flipped = applyAugmentParams(x, params({ dy: fill(1), dx: fill(1), flip: fill(1) }), 1);
  const rev = tf.reverse(x, 2);
  assert.deepEqual(await flipped.data(), await rev.data());
  // dy = pad + 1: output row i reads input row i + 1; the last row comes from padding.
  const up = await applyAugmentParams(x, params({ dy: fill(2), dx: fill(1) }), 1).data();
  const src = await x.data();
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const want = i + 1 < H ? src[(n * H + i + 1) * W + j] : 0;
        assert.equal(up[(n * H + i) * W + j], want, `n${n} (${i},${j})`);
      }
    }
  }
  tf.dispose([x, flipped, rev]);
});

Deno.test("augment: erasing zeroes exactly the rectangle of the chosen samples", async () => {
  await initTf("cpu");
  const x = tf.ones([N, H, W, 1]) as tf.Tensor4D;
  const p = params({
    r0: Int32Array.of(1, 0, 0),
    r1: Int32Array.of(3, 0, 6),
    c0: Int32Array.of(2, 0, 4),
    c1: Int32Array.of(5, 0, 5),
  });
  const out = await applyAugmentParams(x, p, 0).data();
  const zeros = [0, 1, 2].map((n) =>
    Array.from(out.subarray(n * H * W, (n + 1) * H * W)).filter((v) => v === 0).length
  );
  assert.deepEqual(zeros, [2 * 3, 0, 6 * 1]);
  assert.equal(out[1 * W + 2], 0); // sample 0, row 1, col 2 is inside
  assert.equal(out[1 * W + 1], 1); // col 1 is outside
  x.dispose();
});

Deno.test("augment: drawn parameters stay in range and the same seed gives the same batch", async () => {
  await initTf("cpu");
  const p = drawAugmentParams(200, 28, 28, new Rng(7), { maxShift: 2, eraseProb: 0.5 });
  for (let i = 0; i < 200; i++) {
    assert.ok(p.dy[i] >= 0 && p.dy[i] <= 4 && p.dx[i] >= 0 && p.dx[i] <= 4);
    assert.ok(p.r0[i] <= p.r1[i] && p.r1[i] <= 28 && p.c0[i] <= p.c1[i] && p.c1[i] <= 28);
  }
  const erased = Array.from(p.r1).filter((v, i) => v > p.r0[i]).length;
  assert.ok(erased > 60 && erased < 140, `erased ${erased}/200 with p = 0.5`);
  const flips = Array.from(p.flip).filter((f) => f === 1).length;
  assert.ok(flips > 60 && flips < 140, `flipped ${flips}/200`);
  const x = ramp();
  const a = augmentBatch(x, new Rng(3));
  const b = augmentBatch(x, new Rng(3));
  const c = augmentBatch(x, new Rng(4));
  assert.deepEqual(await a.data(), await b.data());
  assert.notDeepEqual(await a.data(), await c.data());
  tf.dispose([x, a, b, c]);
});
