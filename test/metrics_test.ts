import assert from "node:assert/strict";
import fc from "fast-check";
import {
  accuracy,
  argmaxRows,
  classificationMetrics,
  confusionMatrix,
  probabilityMetrics,
  topK,
} from "../src/eval/metrics.ts";

const ABC = ["a", "b", "c"];

function assertAlmostEquals(actual: number, expected: number, tol = 1e-9): void {
  assert.ok(Math.abs(actual - expected) <= tol, `expected ${expected}, got ${actual}`);
}

Deno.test("metrics: hand-computed 3-class case", () => {
  // Confusion [true][pred]: a: 2 right, 1 as b; b: 1 right, 1 as c; c: 1 right.
  const t = [0, 0, 0, 1, 1, 2];
  const p = [0, 0, 1, 1, 2, 2];
  const m = classificationMetrics(t, p, ABC);
  assert.deepEqual(m.confusion, [[2, 1, 0], [0, 1, 1], [0, 0, 1]]);
  assertAlmostEquals(m.accuracy, 4 / 6);
  const pc = m.perClass;
  assert.deepEqual(pc.map((c) => c.support), [3, 2, 1]);
  assert.deepEqual(pc.map((c) => c.predicted), [2, 2, 2]);
  assertAlmostEquals(pc[0].precision, 1);
  assertAlmostEquals(pc[0].recall, 2 / 3);
  assertAlmostEquals(pc[0].f1, 0.8);
  assertAlmostEquals(pc[1].f1, 0.5);
  assertAlmostEquals(pc[2].precision, 0.5);
  assertAlmostEquals(pc[2].recall, 1);
  assertAlmostEquals(pc[2].f1, 2 / 3);
  assertAlmostEquals(m.macro.precision, 2 / 3);
  assertAlmostEquals(m.macro.recall, 13 / 18);
  assertAlmostEquals(m.macro.f1, (0.8 + 0.5 + 2 / 3) / 3);
  assertAlmostEquals(m.weighted.precision, 0.75);
  assertAlmostEquals(m.weighted.recall, 4 / 6);
  assertAlmostEquals(m.weighted.f1, (3 * 0.8 + 2 * 0.5 + 2 / 3) / 6);
  assert.deepEqual(
    m.topConfusions.map((c) => [c.trueName, c.predictedName, c.count]),
    [["a", "b", 1], ["b", "c", 1]],
  );
  assertAlmostEquals(m.topConfusions[1].fractionOfTrue, 0.5);
});

Deno.test("metrics: never-predicted and absent classes give 0, absent ones leave the macro", () => {
  // Class c is never the truth and never predicted; class b is never predicted.
  const m = classificationMetrics([0, 1, 1], [0, 0, 0], ABC);
  assert.deepEqual(m.perClass[1].precision, 0);
  assert.deepEqual(m.perClass[1].recall, 0);
  assert.deepEqual(m.perClass[1].f1, 0);
  assert.deepEqual(m.perClass[2].support, 0);
  assert.deepEqual(m.perClass[2].f1, 0);
  // Macro over a and b only: a has P=1/3, R=1, F1=0.5; b has 0.
  assertAlmostEquals(m.macro.f1, 0.25);
  assertAlmostEquals(m.macro.precision, 1 / 6);
  // Ranked confusions: b->a twice.
  assert.deepEqual(m.topConfusions[0].count, 2);
});

Deno.test("metrics: probability metrics and helpers", () => {
  const probs = [
    0.7,
    0.2,
    0.1, // true 0, right
    0.5,
    0.1,
    0.4, // true 2, wrong (p=0.5), true in top 3
    0.1,
    0.8,
    0.1, // true 1, right
  ];
  assert.deepEqual([...argmaxRows(probs, 3)], [0, 0, 1]);
  assert.deepEqual(topK([0.1, 0.6, 0.3], 2).map((r) => r.label), [1, 2]);
  const pm = probabilityMetrics([0, 2, 1], probs, 3);
  assertAlmostEquals(pm.logLoss, -(Math.log(0.7) + Math.log(0.4) + Math.log(0.8)) / 3);
  assert.deepEqual(pm.top3Accuracy, 1);
  assertAlmostEquals(pm.meanConfidenceCorrect, 0.75);
  assertAlmostEquals(pm.meanConfidenceWrong, 0.5);
});

Deno.test("metrics: bad labels are refused", () => {
  assert.throws(() => confusionMatrix([0, 3], [0, 1], 3), /trueLabels\[1\] = 3/);
  assert.throws(() => accuracy([0], [0, 1]), /mismatch/);
});

const labelPairs = fc.integer({ min: 1, max: 10 }).chain((k) =>
  fc.array(fc.tuple(fc.nat(k - 1), fc.nat(k - 1)), { minLength: 1, maxLength: 200 })
    .map((pairs) => ({ k, t: pairs.map((x) => x[0]), p: pairs.map((x) => x[1]) }))
);
const namesFor = (k: number) => Array.from({ length: k }, (_, i) => `c${i}`);

Deno.test("metrics: properties (trace/sum, ranges, support, perfect predictions)", () => {
  fc.assert(
    fc.property(labelPairs, ({ k, t, p }) => {
      const m = classificationMetrics(t, p, namesFor(k));
      const sum = m.confusion.flat().reduce((a, b) => a + b, 0);
      const trace = m.confusion.reduce((a, row, i) => a + row[i], 0);
      assert.deepEqual(sum, t.length);
      assertAlmostEquals(m.accuracy, trace / sum, 1e-12);
      assert.deepEqual(m.perClass.reduce((a, c) => a + c.support, 0), t.length);
      assert.deepEqual(m.perClass.reduce((a, c) => a + c.predicted, 0), t.length);
      for (const v of [m.macro.f1, m.macro.precision, m.macro.recall, m.weighted.f1]) {
        if (!(v >= 0 && v <= 1)) throw new Error(`average out of [0,1]: ${v}`);
      }
      // Weighted recall is exactly the accuracy.
      assertAlmostEquals(m.weighted.recall, m.accuracy, 1e-12);
      const offDiagonal = sum - trace;
      assert.deepEqual(m.topConfusions.reduce((a, c) => a + c.count, 0), offDiagonal);
      const perfect = classificationMetrics(t, t, namesFor(k));
      assert.deepEqual([perfect.accuracy, perfect.macro.f1, perfect.weighted.f1], [1, 1, 1]);
      assert.deepEqual(perfect.topConfusions, []);
    }),
    { seed: 20240605, numRuns: 200 },
  );
});
