// Our gradient configs (src/tf/gradients.ts) against central differences, on the CPU backend,
// over random shapes (fast-check): broadcasting for the binary ops, axes and keepDims for the
// reductions, the four transposes and batch broadcasting for matMul, strides and padding for
// conv2d and max-pool, batch norm.
//
// Each case differentiates L = sum(op(inputs) * w) for a random w, so every output element's
// gradient counts. Tolerance: |numeric - analytic| <= 2e-3 * max(1, max|analytic|). Central
// differences with h = 1e-2 have truncation error ~h^2 * |f'''| (~1e-4 here) and float32
// round-off ~1e-7 * |L| / h (~1e-4 for |L| ~ 10); 2e-3 leaves room for both, while a wrong
// gradient (a missing term, a transpose, a broadcast not summed) is off by O(1). Inputs stay
// away from kinks: |x| >= 0.1 for relu, distinct values >= 0.05 apart for max and max-pool.
//
// Every case also checks that the kernel's gradient really ran (a counting wrapper), and one
// test checks that every registered config has a case.

import assert from "node:assert/strict";
import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { GRADIENTS } from "../src/tf/gradients.ts";
import { Rng } from "../src/random.ts";
import { readFlag } from "../src/flags.ts";

const H = 1e-2;
const TOL = 2e-3;
/** FMNIST_SOAK=1 runs ten times the cases. */
const FC = { seed: 20261201, numRuns: readFlag("FMNIST_SOAK") === "1" ? 120 : 12 };

type Op = (xs: tf.Tensor[]) => tf.Tensor;

interface Case {
  kernel: string;
  /** fast-check arbitrary of the inputs (plain arrays + shapes) and the op to apply. */
  arb: fc.Arbitrary<{ inputs: Input[]; op: Op; what: string }>;
}

interface Input {
  shape: number[];
  values: Float32Array;
}

/** Gradient calls per kernel, counted by wrapping the registered configs. */
const calls = new Map<string, number>();

function countCalls() {
  for (const { kernelName } of GRADIENTS) {
    const config = tf.getGradient(kernelName)!;
    const inner = config.gradFunc;
    config.gradFunc = (dy, saved, attrs) => {
      calls.set(kernelName, (calls.get(kernelName) ?? 0) + 1);
      return inner(dy, saved, attrs);
    };
  }
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function uniform(shape: number[], seed: number, lo = -1, hi = 1): Input {
  const rng = new Rng(seed);
  return {
    shape,
    values: Float32Array.from({ length: size(shape) }, () => lo + rng.next() * (hi - lo)),
  };
}

/** Values with |x| >= 0.1: no element within h of relu's kink. */
function awayFromZero(shape: number[], seed: number): Input {
  const rng = new Rng(seed);
  const values = Float32Array.from({ length: size(shape) }, () => {
    const m = 0.1 + rng.next() * 0.9;
    return rng.next() < 0.5 ? -m : m;
  });
  return { shape, values };
}

/** A shuffled grid with step 0.05: no two elements within 2h, so max has no near-ties. */
function distinct(shape: number[], seed: number): Input {
  const n = size(shape);
  const rng = new Rng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { shape, values: Float32Array.from(order, (k) => (k - n / 2) * 0.05) };
}

const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const shapeArb = (rank: [number, number], dim: [number, number]) =>
  fc.array(fc.integer({ min: dim[0], max: dim[1] }), { minLength: rank[0], maxLength: rank[1] });

/** Shape `b` for broadcasting against `a`: some dims set to 1, some leading dims dropped. */
const broadcastPair = shapeArb([1, 3], [1, 4]).chain((a) =>
  fc.tuple(
    fc.constant(a),
    fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length }),
    fc.integer({ min: 0, max: a.length - 1 }),
    fc.boolean(),
  ).map(([a, ones, drop, swap]) => {
    const b = a.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
    return swap ? [b, a] : [a, b];
  })
);

const binary = (kernel: string, op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): Case => ({
  kernel,
  arb: fc.tuple(broadcastPair, seed).map(([[sa, sb], s]) => ({
    inputs: [uniform(sa, s), uniform(sb, s + 1)],
    op: ([a, b]) => op(a, b),
    what: `[${sa}] and [${sb}]`,
  })),
});

const unary = (
  kernel: string,
  op: (x: tf.Tensor) => tf.Tensor,
  input: (shape: number[], s: number) => Input = uniform,
): Case => ({
  kernel,
  arb: fc.tuple(shapeArb([1, 3], [1, 4]), seed).map(([shape, s]) => ({
    inputs: [input(shape, s)],
    op: ([x]) => op(x),
    what: `[${shape}]`,
  })),
});

/** A rank 1-3 shape, a subset of its axes (maybe all, maybe negative), keepDims. */
const reduction = (
  kernel: string,
  op: (x: tf.Tensor, axes: number[], keepDims: boolean) => tf.Tensor,
  input: (shape: number[], s: number) => Input = uniform,
): Case => ({
  kernel,
  arb: shapeArb([1, 3], [1, 4]).chain((shape) =>
    fc.tuple(
      fc.constant(shape),
      fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
      fc.boolean(),
      fc.boolean(),
      seed,
    )
  ).map(([shape, axes, negative, keepDims, s]) => {
    const ax = negative ? axes.map((a) => a - shape.length) : axes;
    return {
      inputs: [input(shape, s)],
      op: ([x]) => op(x, ax, keepDims),
      what: `[${shape}] axes [${ax}] keepDims ${keepDims}`,
    };
  }),
});

/** Batch, square input size, channels, window (kernel) size, stride, padding, seed. */
const windowArb = (minHw: number) =>
  fc.record({
    n: fc.integer({ min: 1, max: 2 }),
    hw: fc.integer({ min: minHw, max: 6 }),
    c: fc.integer({ min: 1, max: 3 }),
    k: fc.integer({ min: 1, max: 3 }),
    stride: fc.integer({ min: 1, max: 2 }),
    pad: fc.constantFrom("same" as const, "valid" as const),
    s: seed,
  });

const CASES: Case[] = [
  binary("Add", tf.add),
  binary("Sub", tf.sub),
  binary("Multiply", tf.mul),
  {
    kernel: "AddN",
    arb: fc.tuple(shapeArb([1, 3], [1, 4]), fc.integer({ min: 2, max: 4 }), seed).map((
      [shape, n, s],
    ) => ({
      inputs: Array.from({ length: n }, (_, i) => uniform(shape, s + i)),
      op: (xs) => tf.addN(xs),
      what: `${n} x [${shape}]`,
    })),
  },
  unary("Neg", tf.neg),
  unary("Square", tf.square),
  unary("Exp", tf.exp),
  unary("Log", tf.log, (shape, s) => uniform(shape, s, 0.5, 2)),
  unary("Relu", tf.relu, awayFromZero),
  unary("Cast", (x) => tf.cast(x, "float32")),
  {
    kernel: "Reshape",
    arb: fc.tuple(shapeArb([1, 3], [1, 4]), seed).map(([shape, s]) => ({
      inputs: [uniform(shape, s)],
      op: ([x]) => tf.reshape(x, [size(shape)]),
      what: `[${shape}]`,
    })),
  },
  reduction("Sum", (x, axes, keepDims) => tf.sum(x, axes, keepDims)),
  reduction("Mean", (x, axes, keepDims) => tf.mean(x, axes, keepDims)),
  reduction("Max", (x, axes, keepDims) => tf.max(x, axes, keepDims), distinct),
  {
    kernel: "BatchMatMul",
    arb: fc.tuple(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom([], [2], [3]),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      seed,
    ).map(([m, k, n, batch, tA, tB, broadcastB, s]) => {
      const sa = [...batch, ...(tA ? [k, m] : [m, k])];
      const sb = [...(broadcastB ? [] : batch), ...(tB ? [n, k] : [k, n])];
      return {
        inputs: [uniform(sa, s), uniform(sb, s + 1)],
        op: ([a, b]) => tf.matMul(a, b, tA, tB),
        what: `[${sa}]${tA ? "^T" : ""} x [${sb}]${tB ? "^T" : ""}`,
      };
    }),
  },
  {
    kernel: "Conv2D",
    arb: fc.tuple(windowArb(3), fc.integer({ min: 1, max: 3 })).map((
      [{ n, hw, c, k, stride, pad, s }, cout],
    ) => ({
      inputs: [uniform([n, hw, hw, c], s), uniform([k, k, c, cout], s + 1)],
      op: ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad),
      what: `x [${n},${hw},${hw},${c}] w [${k},${k},${c},${cout}] s${stride} ${pad}`,
    })),
  },
  {
    kernel: "MaxPool",
    arb: windowArb(2).filter(({ hw, k, pad }) => pad === "same" || k <= hw).map((
      { n, hw, c, k, stride, pad, s },
    ) => ({
      inputs: [distinct([n, hw, hw, c], s)],
      op: ([x]) => tf.maxPool(x as tf.Tensor4D, k, stride, pad),
      what: `[${n},${hw},${hw},${c}] filter ${k} s${stride} ${pad}`,
    })),
  },
  {
    kernel: "FusedBatchNorm",
    arb: fc.tuple(
      fc.integer({ min: 1, max: 2 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 3 }),
      seed,
    ).map(([n, hw, c, s]) => ({
      inputs: [
        uniform([n, hw, hw, c], s),
        uniform([c], s + 1), // mean
        uniform([c], s + 2, 0.5, 2), // variance
        uniform([c], s + 3), // offset
        uniform([c], s + 4), // scale
      ],
      op: ([x, mean, variance, offset, scale]) =>
        tf.batchNorm(
          x as tf.Tensor4D,
          mean as tf.Tensor1D,
          variance as tf.Tensor1D,
          offset as tf.Tensor1D,
          scale as tf.Tensor1D,
          1e-3,
        ),
      what: `x [${n},${hw},${hw},${c}]`,
    })),
  },
];

/** L = sum(op(inputs) * w) as a number, for the numerical derivative. */
function lossValue(op: Op, xs: Input[], w: Float32Array): number {
  return tf.tidy(() => {
    const y = op(xs.map((x) => tf.tensor(x.values, x.shape)));
    return tf.sum(tf.mul(y, tf.tensor(w, y.shape))).dataSync()[0];
  });
}

Deno.test("gradients: every registered config has a numerical-differentiation case", () => {
  assert.deepEqual(
    CASES.map((c) => c.kernel).sort(),
    GRADIENTS.map((g) => g.kernelName).sort(),
  );
});

Deno.test("gradients: analytic = central differences over random shapes (CPU backend)", async (t) => {
  await initTf("cpu");
  countCalls();
  for (const c of CASES) {
    await t.step(c.kernel, () => {
      calls.set(c.kernel, 0);
      fc.assert(
        fc.property(c.arb, ({ inputs, op, what }) => {
          const outShape = tf.tidy(() => op(inputs.map((x) => tf.tensor(x.values, x.shape))).shape);
          const w = uniform(outShape, size(outShape) + 17).values;
          const analytic = tf.tidy(() => {
            const f = (...xs: tf.Tensor[]) => tf.sum(tf.mul(op(xs), tf.tensor(w, outShape)));
            const grads = tf.grads(f)(inputs.map((x) => tf.tensor(x.values, x.shape)));
            return grads.map((g) => g.dataSync() as Float32Array);
          });
          inputs.forEach((input, i) => {
            const scale = Math.max(1, ...analytic[i].map(Math.abs));
            for (let j = 0; j < input.values.length; j++) {
              const at = (delta: number) => {
                const moved = inputs.map((x, k) => {
                  if (k !== i) return x;
                  const values = x.values.slice();
                  values[j] += delta;
                  return { shape: x.shape, values };
                });
                return lossValue(op, moved, w);
              };
              const numeric = (at(H) - at(-H)) / (2 * H);
              const err = Math.abs(numeric - analytic[i][j]);
              assert.ok(
                err <= TOL * scale,
                `${c.kernel} ${what}: input ${i} element ${j}: analytic ${analytic[i][j]}, ` +
                  `numeric ${numeric} (error ${err.toExponential(2)} > ${TOL} x ${scale})`,
              );
            }
          });
        }),
        FC,
      );
      assert.ok((calls.get(c.kernel) ?? 0) >= FC.numRuns, `${c.kernel}: its gradient never ran`);
    });
  }
});
