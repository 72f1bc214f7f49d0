// LR schedules and early stopping driven by scripted validation curves.

import assert from "node:assert/strict";

const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
import { cosineLr, EarlyStopping, ReduceOnPlateau } from "../src/train/schedule.ts";

Deno.test("cosineLr: starts at base, halves at mid-run, ends at min, never rises", () => {
  near(cosineLr(0, 10, 1e-3), 1e-3);
  near(cosineLr(5, 10, 1e-3), 5e-4);
  near(cosineLr(10, 10, 1e-3, 1e-5), 1e-5);
  for (let e = 1; e <= 10; e++) assert.ok(cosineLr(e, 10, 1e-3) < cosineLr(e - 1, 10, 1e-3));
});

Deno.test("ReduceOnPlateau: cuts on the patience-th epoch without gain, as Keras does", () => {
  const p = new ReduceOnPlateau(1e-3, { factor: 0.5, patience: 2, minLr: 1e-4 });
  // Hand trace of Keras's ReduceLROnPlateau (mode min, min_delta 1e-4): best = 0.7 after epoch 3;
  // epoch 4 (0.7, not below 0.7 - 1e-4) wait 1; epoch 5 wait 2 >= 2: cut to 5e-4, wait 0;
  // epochs 6, 7: wait 1, 2: cut to 2.5e-4; epochs 8, 9: cut to 1.25e-4; epoch 10 (0.65) is a
  // new best; epoch 11 wait 1.
  const curve = [1.0, 0.8, 0.7, 0.7, 0.71, 0.72, 0.72, 0.72, 0.72, 0.65, 0.7];
  const lrs = curve.map((loss) => p.update(loss));
  assert.deepEqual(lrs, [
    1e-3,
    1e-3,
    1e-3,
    1e-3,
    5e-4,
    5e-4,
    2.5e-4,
    2.5e-4,
    1.25e-4,
    1.25e-4,
    1.25e-4,
  ]);
  // Floors at minLr.
  for (let i = 0; i < 20; i++) p.update(1);
  assert.deepEqual(p.state.lr, 1e-4);
});

Deno.test("ReduceOnPlateau: cooldown as Keras (counts down first, clears wait, blocks counting)", () => {
  const p = new ReduceOnPlateau(1, { factor: 0.5, patience: 1, minLr: 0, cooldown: 2 });
  // Keras trace: e1 best 1; e2 wait 1 >= 1: cut to 0.5, cooldown 2; e3 cooldown -> 1, wait 0,
  // still in cooldown: no count; e4 cooldown -> 0, wait 1: cut to 0.25, cooldown 2; e5 (0.5) new
  // best, cooldown -> 1; e6 cooldown -> 0, wait 1: cut to 0.125.
  assert.deepEqual([1, 1, 1, 1, 0.5, 1].map((m) => p.update(m)), [1, 0.5, 0.5, 0.25, 0.25, 0.125]);
});

Deno.test("ReduceOnPlateau: state survives a JSON round trip (checkpoint resume)", () => {
  const a = new ReduceOnPlateau(1e-3, { patience: 1 });
  [1, 0.9, 0.95].forEach((v) => a.update(v));
  const b = new ReduceOnPlateau(1e-3, { patience: 1 });
  b.state = JSON.parse(JSON.stringify(a.state));
  assert.deepEqual(
    [0.96, 0.97, 0.5].map((v) => a.update(v)),
    [0.96, 0.97, 0.5].map((v) => b.update(v)),
  );
});

Deno.test("EarlyStopping: stops after `patience` epochs without a new best, remembers the best", () => {
  const es = new EarlyStopping(3);
  const accs = [0.80, 0.85, 0.84, 0.86, 0.86, 0.85, 0.855, 0.9];
  const out = accs.map((a, i) => es.update(i + 1, a));
  assert.deepEqual(out.map((o) => o.improved), [
    true,
    true,
    false,
    true,
    false,
    false,
    false,
    true,
  ]);
  assert.deepEqual(out.map((o) => o.stop), [false, false, false, false, false, false, true, false]);
  assert.deepEqual(es.state.bestEpoch, 8);
  assert.deepEqual(es.state.best, 0.9);
});

Deno.test("EarlyStopping: patience 0 never stops", () => {
  const es = new EarlyStopping(0);
  assert.ok([0.9, 0.5, 0.4, 0.3, 0.2].every((a, i) => !es.update(i + 1, a).stop));
  assert.deepEqual(es.state.bestEpoch, 1);
});
