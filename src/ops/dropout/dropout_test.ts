// SeededDropout (src/ops/dropout/dropout.ts): the counter-based mask is the same on webgpu (WGSL) and cpu
// (TypeScript), bit for bit; its statistics are those of independent Bernoulli draws; the
// gradient regenerates the mask from the seed; 1 dispatch each way.
//   1. fast-check over shapes (rank 1-4), rates (0 included) and uint32 seeds, on webgpu (outputs
//      NaN-poisoned) and on the cpu kernel: y and dx equal dropoutRef exactly (one f32 product
//      per element: no tolerance), so both backends drop the same elements. Kept fraction within
//      5 binomial standard deviations (+1 element) of 1 - rate: a false failure has odds ~1e-6
//      per case; a generator that drops by a wrong threshold, or one bit of the hash lost,
//      fails by far more on the larger cases.
//   2. Masks of other seeds (neighbours, one high bit apart, random) agree on as many elements
//      as independent masks do, within the same bound: a seed that only permutes or shifts the
//      mask, or is ignored, fails. Halves of one mask keep the same fraction (no drift).
//   3. Dispatches: 1 forward, 1 backward; a 4.3M-element tensor (2-D grid) matches too.

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { dropout, dropoutConstants } from "./dropout.ts";
import { dropoutKeeps, dropoutRef } from "./dropout_ref.ts";
import { countDispatches } from "../../../bench/dispatches.ts";
import { assertClose } from "../../../test/helpers/compare.ts";
import { GPU_TEST, gpuTest, runs, withGpu } from "../../../test/helpers/op_check.ts";
import { Rng } from "../../random.ts";

const EXACT = { atol: 0, rtol: 0 };

interface Case {
  shape: number[];
  rate: number;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  shape: fc.array(fc.integer({ min: 1, max: 24 }), { minLength: 1, maxLength: 4 }),
  rate: fc.oneof(
    fc.constant(0),
    fc.constantFrom(0.1, 0.3, 0.5, 0.9),
    fc.double({ min: 0, max: 0.99, noNaN: true }),
  ),
  seed: fc.nat({ max: 0xffffffff }),
});

/** |count - n p| <= 5 sqrt(n p (1 - p)) + 1. */
function withinBinomial(count: number, n: number, p: number, label: string) {
  const bound = 5 * Math.sqrt(n * p * (1 - p)) + 1;
  assert.ok(
    Math.abs(count - n * p) <= bound,
    `${label}: ${count} of ${n}, expected ${(n * p).toFixed(1)} +- ${bound.toFixed(1)}`,
  );
}

/** Seeded x in [0.5, 1.5) (never 0: a zero in y means a dropped element). */
function inputs(c: Case) {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(c.seed);
  const x = Float32Array.from({ length: n }, () => 0.5 + rng.next());
  const dy = Float32Array.from({ length: n }, () => rng.next() * 4 - 2);
  return { n, x, dy };
}

async function checkCase(c: Case) {
  const { n, x, dy } = inputs(c);
  const xt = tf.tensor(x, c.shape);
  const dyt = tf.tensor(dy, c.shape);
  const y = dropout(xt, c.rate, c.seed);
  const dx = tf.grad((v: tf.Tensor) => dropout(v, c.rate, c.seed))(xt, dyt);
  const label = `shape [${c.shape}] rate ${c.rate} seed ${c.seed}`;
  assert.deepEqual(y.shape, c.shape, label);
  const want = dropoutRef(x, c);
  assertClose(await y.data(), want, EXACT, `${label}: y`);
  assertClose(await dx.data(), dropoutRef(dy, c), EXACT, `${label}: dx`);
  if (c.rate === 0) assertClose(await y.data(), x, EXACT, `${label}: rate 0 is identity`);
  withinBinomial(want.filter((v) => v !== 0).length, n, 1 - c.rate, `${label}: kept`);
  tf.dispose([xt, dyt, y, dx]);
}

const checkAll = () =>
  fc.assert(fc.asyncProperty(caseArb, checkCase), { seed: 21, numRuns: runs(40) });

Deno.test({
  name: "SeededDropout: webgpu and cpu give the reference's mask and gradient bit for bit",
  ...GPU_TEST,
  fn: async () => {
    await withGpu(async () => {
      await checkAll();
      // Past 65535 workgroups of 64: the grid goes 2-D.
      await checkCase({ shape: [4300, 1000], rate: 0.3, seed: 0xfffffffe });
    });
    await initTf("cpu");
    await checkAll();
    await initTf("webgpu");
  },
});

/** The reference mask (true = kept) of n elements. */
function mask(n: number, rate: number, seed: number): Uint8Array {
  const { key, threshold } = dropoutConstants({ rate, seed });
  return Uint8Array.from({ length: n }, (_, i) => dropoutKeeps(key, threshold, i) ? 1 : 0);
}

Deno.test("SeededDropout: masks of different seeds agree no more than independent draws", () => {
  const n = 200_000;
  fc.assert(
    fc.property(
      fc.nat({ max: 0xffffffff }),
      fc.constantFrom(0.1, 0.3, 0.5),
      fc.nat({ max: 0xffffffff }),
      (seed, rate, other) => {
        const a = mask(n, rate, seed);
        const p = 1 - rate;
        withinBinomial(a.subarray(0, n / 2).reduce((s, v) => s + v, 0), n / 2, p, "first half");
        withinBinomial(a.subarray(n / 2).reduce((s, v) => s + v, 0), n / 2, p, "second half");
        const agreeP = p * p + rate * rate;
        for (const s of [seed + 1, seed ^ 1, seed ^ 0x80000000, other]) {
          if ((s >>> 0) === seed) continue;
          const b = mask(n, rate, s >>> 0);
          const agree = a.reduce((t, v, i) => t + (v === b[i] ? 1 : 0), 0);
          withinBinomial(agree, n, agreeP, `seeds ${seed} / ${s >>> 0} rate ${rate}: agreement`);
        }
      },
    ),
    { seed: 22, numRuns: 6 },
  );
});

gpuTest("SeededDropout: one dispatch forward, one backward", async () => {
  const x = tf.randomUniform([128, 3136], 0, 1, "float32", 3);
  const fwd = countDispatches(() => dropout(x, 0.3, 7));
  assert.equal(fwd.count?.total, 1);
  const dy = tf.onesLike(x);
  const bwd = countDispatches(() =>
    tf.tidy(() => {
      const f = (v: tf.Tensor) => dropout(v, 0.3, 7);
      const { value, grad } = tf.valueAndGrad(f)(x, dy);
      return [value, grad];
    })
  );
  assert.equal(bwd.count?.total, 2, "forward + backward");
  await fwd.result.data();
  tf.dispose([x, dy, fwd.result, ...bwd.result]);
});
