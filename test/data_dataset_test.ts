// Seeded rng, shuffles, stratified split, batching and tensor conversion (CPU backend).

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import {
  batchIterator,
  classCounts,
  imagesToTensor,
  labelsToOneHot,
  limitSplit,
  shuffledIndices,
  stratifiedSplit,
} from "../src/data/dataset.ts";
import { createRng } from "../src/random.ts";
import type { Split } from "../src/data/fashion_mnist.ts";
import { initTf } from "../src/tf/setup.ts";
import { fakeBytes } from "./helpers/data_fixtures.ts";

const FC = { seed: 424242, numRuns: 100 };

function fakeSplit(count: number, seed = 1): Split {
  return { images: fakeBytes(count * 784, seed), labels: fakeBytes(count, seed + 7, 10), count };
}

function sorted(a: ArrayLike<number>): number[] {
  return Array.from(a).sort((x, y) => x - y);
}

Deno.test("createRng: seeded, in [0, 1), roughly uniform, seeds give different streams", () => {
  const draw = (seed: number, n: number) => Array.from({ length: n }, createRng(seed));
  assert.deepEqual(draw(5, 50), draw(5, 50));
  assert.notDeepEqual(draw(5, 50), draw(6, 50));
  assert.notDeepEqual(draw(0, 50), draw(2 ** 32, 50), "high bits of the seed matter");
  fc.assert(
    fc.property(fc.maxSafeInteger(), (seed) => draw(seed, 64).every((x) => x >= 0 && x < 1)),
    FC,
  );
  // 10 buckets x 20000 draws: each bucket within 10% of 2000 (about 7 standard deviations).
  const buckets = new Array(10).fill(0);
  for (const x of draw(123, 20000)) buckets[Math.floor(x * 10)]++;
  assert.ok(buckets.every((b) => Math.abs(b - 2000) < 200), String(buckets));
  assert.throws(() => createRng(1.5), RangeError);
});

Deno.test("shuffledIndices: a seeded permutation of 0..n-1", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (n, seed) => {
      const p = shuffledIndices(n, createRng(seed));
      assert.ok(p instanceof Int32Array);
      assert.deepEqual(sorted(p), Array.from({ length: n }, (_, i) => i));
      assert.deepEqual(p, shuffledIndices(n, createRng(seed)));
    }),
    FC,
  );
  const a = shuffledIndices(100, createRng(1));
  assert.notDeepEqual(a, Int32Array.from({ length: 100 }, (_, i) => i), "actually shuffled");
});

Deno.test("stratifiedSplit: disjoint, complete, per-class round(frac * count), seeded", () => {
  const labels = fc.uint8Array({ min: 0, max: 9, maxLength: 400 });
  const frac = fc.double({ min: 0, max: 0.95, noNaN: true });
  fc.assert(
    fc.property(labels, frac, fc.integer(), (labels, frac, seed) => {
      const { train, val } = stratifiedSplit(labels, frac, seed);
      assert.deepEqual(
        sorted([...train, ...val]),
        Array.from({ length: labels.length }, (_, i) => i),
      );
      assert.deepEqual(Array.from(train), sorted(train));
      assert.deepEqual(Array.from(val), sorted(val));
      const all = classCounts(labels);
      const inVal = classCounts(Array.from(val, (i) => labels[i]));
      assert.deepEqual(inVal, all.map((c) => Math.round(frac * c)));
      assert.deepEqual(stratifiedSplit(labels, frac, seed), { train, val });
    }),
    FC,
  );
  const labels1000 = fakeBytes(1000, 3, 10);
  const a = stratifiedSplit(labels1000, 0.2, 1);
  assert.notDeepEqual(a.val, stratifiedSplit(labels1000, 0.2, 2).val, "seed changes the split");
  assert.equal(stratifiedSplit(labels1000, 0, 1).val.length, 0);
  assert.equal(stratifiedSplit(labels1000, 0, 1).train.length, 1000);
  for (const bad of [1, -0.1, NaN, 1.5]) {
    assert.throws(() => stratifiedSplit(labels1000, bad, 1), /fraction must be in \[0, 1\)/);
  }
});

Deno.test("batchIterator: every index exactly once per epoch, new order each epoch", () => {
  const arb = fc.record({
    indices: fc.uniqueArray(fc.integer({ min: 0, max: 10000 }), { maxLength: 300 }),
    batchSize: fc.integer({ min: 1, max: 64 }),
    seed: fc.integer(),
  });
  fc.assert(
    fc.property(arb, ({ indices, batchSize, seed }) => {
      const input = Int32Array.from(indices);
      const rng = createRng(seed);
      const batches = [...batchIterator(input, batchSize, rng)];
      assert.equal(batches.length, Math.ceil(indices.length / batchSize));
      batches.forEach((b, k) => {
        assert.ok(b instanceof Int32Array);
        const expected = k < batches.length - 1 ? batchSize : indices.length - k * batchSize;
        assert.equal(b.length, expected);
      });
      assert.deepEqual(sorted(batches.flatMap((b) => Array.from(b))), sorted(indices));
      assert.deepEqual(Array.from(input), indices, "input untouched");
    }),
    FC,
  );
  const rng = createRng(9);
  const indices = Int32Array.from({ length: 50 }, (_, i) => i * 2);
  const epoch1 = [...batchIterator(indices, 16, rng)].flatMap((b) => Array.from(b));
  const epoch2 = [...batchIterator(indices, 16, rng)].flatMap((b) => Array.from(b));
  assert.notDeepEqual(epoch1, epoch2);
  assert.deepEqual(sorted(epoch1), sorted(epoch2));
  assert.throws(() => batchIterator(indices, 0, rng), /batch size must be a positive integer/);
});

Deno.test("imagesToTensor / labelsToOneHot: selected items, scaled, one-hot, no leaks", async () => {
  await initTf("cpu");
  const split = fakeSplit(6);
  const before = tf.memory().numTensors;
  const picks = [4, 0, 4];
  const x = imagesToTensor(split, picks);
  const y = labelsToOneHot(split, Int32Array.from(picks));
  assert.deepEqual(x.shape, [3, 28, 28, 1]);
  assert.equal(x.dtype, "float32");
  assert.deepEqual(y.shape, [3, 10]);
  const xs = await x.data();
  const ys = await y.data();
  picks.forEach((item, k) => {
    for (let p = 0; p < 784; p += 97) {
      assert.ok(Math.abs(xs[k * 784 + p] - split.images[item * 784 + p] / 255) < 1e-7);
    }
    const row = Array.from(ys.subarray(k * 10, k * 10 + 10));
    assert.deepEqual(row, row.map((_, c) => (c === split.labels[item] ? 1 : 0)));
  });
  assert.ok(xs.every((v) => v >= 0 && v <= 1));
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => imagesToTensor(split, [6]), /index 6 outside 0\.\.5/);
  assert.throws(() => labelsToOneHot(split, [-1]), /index -1 outside/);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("limitSplit keeps the first n items; classCounts counts labels", () => {
  const split = fakeSplit(10);
  const small = limitSplit(split, 4);
  assert.equal(small.count, 4);
  assert.deepEqual(small.labels, split.labels.subarray(0, 4));
  assert.deepEqual(small.images, split.images.subarray(0, 4 * 784));
  assert.equal(limitSplit(split, 50), split);
  assert.equal(limitSplit(split, 0).count, 0);
  assert.throws(() => limitSplit(split, -1), RangeError);
  assert.deepEqual(classCounts(new Uint8Array([0, 3, 3, 9])), [1, 0, 0, 2, 0, 0, 0, 0, 0, 1]);
});
