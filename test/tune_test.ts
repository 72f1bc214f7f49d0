// Tuning: trial generation and ranking, and a tiny real search writing its three result files.

import assert from "node:assert/strict";
import { main } from "../src/cmd/tune.ts";
import { readConfigFile, resolveConfig } from "../src/train/config.ts";
import { gridTrials, randomTrials, rankResults, type TrialResult } from "../src/train/tune.ts";
import { LOCAL_DATA_DIR, needsRealData } from "./helpers/data_fixtures.ts";

const SPACE = {
  lr: [1e-3, 2e-3],
  batch: [32, 64],
  dropout: [0, 0.3],
  weightDecay: [0],
  epochs: [1, 2],
};

Deno.test("tune: grid covers every combination; random draws distinct, seeded subsets", () => {
  const grid = gridTrials(SPACE);
  assert.equal(grid.length, 16);
  assert.equal(new Set(grid.map((t) => JSON.stringify(t))).size, 16);
  const a = randomTrials(SPACE, 5, 1);
  assert.equal(new Set(a.map((t) => JSON.stringify(t))).size, 5);
  assert.deepEqual(randomTrials(SPACE, 5, 1), a);
  assert.notDeepEqual(randomTrials(SPACE, 5, 2), a);
  assert.equal(randomTrials(SPACE, 100, 1).length, 16);
});

Deno.test("tune: ranking by validation accuracy, then loss; failed trials last", () => {
  const base = { lr: 1, batch: 1, dropout: 0, weightDecay: 0, epochs: 1, bestEpoch: 1, timeS: 1 };
  const rows: TrialResult[] = [
    { ...base, trial: 1, valAcc: 0.8, valLoss: 0.5 },
    { ...base, trial: 2, valAcc: NaN, valLoss: NaN, error: "diverged" },
    { ...base, trial: 3, valAcc: 0.9, valLoss: 0.4 },
    { ...base, trial: 4, valAcc: 0.9, valLoss: 0.3 },
  ];
  assert.deepEqual(rankResults(rows).map((r) => r.trial), [4, 3, 1, 2]);
});

Deno.test("tune: a tiny grid writes ranked CSV/markdown and a best config train accepts", {
  ignore: needsRealData(
    "tune: a tiny grid writes ranked CSV/markdown and a best config train accepts",
  ),
}, async () => {
  const out = await Deno.makeTempDir({ prefix: "tune_test_" });
  const origLog = console.log;
  console.log = () => {};
  try {
    await main([
      ...["--backend", "webgpu", "--model", "baseline", "--limit", "120", "--val-split", "0.25"],
      ...["--lr", "1e-3,3e-3", "--batch", "32", "--dropout", "0", "--weight-decay", "0"],
      ...["--epochs", "1", "--out", out, "--quiet", "--data", LOCAL_DATA_DIR!],
    ]);
  } finally {
    console.log = origLog;
  }
  const csv = (await Deno.readTextFile(`${out}/results.csv`)).trim().split("\n");
  assert.equal(csv.length, 3);
  assert.match(csv[0], /^rank,trial,lr,batch,dropout,weightDecay,epochs,valAcc,/);
  const accs = csv.slice(1).map((l) => Number(l.split(",")[7]));
  assert.ok(accs[0] >= accs[1], "ranked best first");
  const md = await Deno.readTextFile(`${out}/results.md`);
  assert.match(md, /\| rank \| trial \| lr \|/);
  const best = await readConfigFile(`${out}/best-config.json`);
  const cfg = resolveConfig(best, {});
  assert.equal(cfg.model, "baseline");
  assert.equal(cfg.lr, Number(csv[1].split(",")[2]));
  await Deno.remove(out, { recursive: true });
});
