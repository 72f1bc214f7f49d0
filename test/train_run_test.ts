// Short real training runs on Fashion-MNIST subsets (webgpu: on llvmpipe a baseline step is
// ~25x faster there than on tfjs's plain-JS CPU backend): learning, output files, and exact
// continuation after a resume, both at an epoch boundary and mid-epoch (the SIGINT path).

import assert from "node:assert/strict";
import { type FashionMnist, loadFashionMnist } from "../src/data/fashion_mnist.ts";
import { loadModelForInference, readCheckpoint } from "../src/model/checkpoint.ts";
import type { Model } from "../src/model/model.ts";
import { resolveConfig, type TrainConfig } from "../src/train/config.ts";
import { DivergedError, prepareData, runTraining } from "../src/train/loop.ts";
import { createProgress } from "../src/train/progress.ts";
import { LOCAL_DATA_DIR } from "./helpers/data_fixtures.ts";
import { trainingTest } from "./helpers/train_fixtures.ts";

let data: FashionMnist | undefined;
async function dataset() {
  return data ??= await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
}

const quiet = createProgress({ quiet: true, write: () => {} });
const silent = () => {};

async function train(
  cfg: TrainConfig,
  outDir: string,
  extra: Partial<Parameters<typeof runTraining>[2]> = {},
) {
  await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
  return await runTraining(cfg, prepareData(await dataset(), cfg), {
    outDir,
    progress: quiet,
    log: silent,
    ...extra,
  });
}

async function weights(m: Model): Promise<Float32Array[]> {
  return await Promise.all(m.variables.map(async (v) => (await v.variable.data()) as Float32Array));
}

trainingTest(
  "train: baseline learns from 600 images in 2 epochs and writes the run folder",
  async (out) => {
    const cfg = resolveConfig({}, { model: "baseline", limit: 600, batch: 32, epochs: 2 });
    const r = await train(cfg, out);
    assert.equal(r.history.length, 2);
    const last = r.history[1];
    // Chance is 0.1; 2 epochs over 540 images reach ~0.7 validation accuracy.
    assert.ok(last.valAcc > 0.4, `val acc ${last.valAcc}`);
    assert.ok(last.loss < r.history[0].loss, "training loss falls");
    for (
      const f of [
        "history.json",
        "history.csv",
        "checkpoints/best/weights.bin",
        "checkpoints/last/checkpoint.json",
      ]
    ) {
      await Deno.stat(`${out}/${f}`);
    }
    const csv = (await Deno.readTextFile(`${out}/history.csv`)).trim().split("\n");
    assert.equal(csv[0], "epoch,loss,acc,valLoss,valAcc,lr,epochTimeS");
    assert.equal(csv.length, 3);
    // The returned model holds the best checkpoint's weights, and it loads for inference.
    const { model } = await loadModelForInference(out);
    assert.deepEqual(await weights(model), await weights(r.model));
    model.dispose();
    r.model.dispose();

    // A NaN loss stops the run with a clear error and leaves checkpoints/last untouched.
    const lastDir = `${out}/checkpoints/last`;
    const bytes = await Deno.readFile(`${lastDir}/weights.bin`);
    // Poison the logits bias (a NaN in a conv kernel can vanish: relu's max(NaN, 0) may give 0).
    const bias = (await readCheckpoint(lastDir)).meta.tensors.find((t) =>
      t.name === "logits/bias"
    )!;
    new Float32Array(bytes.buffer, bias.offset, 10).fill(NaN);
    await Deno.writeFile(`${lastDir}/weights.bin`, bytes);
    const poisoned = await readCheckpoint(lastDir);
    await assert.rejects(
      train({ ...cfg, epochs: 3 }, out, { resume: poisoned }),
      (e: Error) =>
        e instanceof DivergedError && /loss became NaN at epoch 3 step 1/.test(e.message) &&
        e.message.includes(`${out}/checkpoints/last`),
    );
    assert.deepEqual(await Deno.readFile(`${lastDir}/weights.bin`), bytes);
  },
);

trainingTest("train: resume (epoch boundary and mid-epoch) continues bit-for-bit", async (root) => {
  // Dropout and augmentation on, so the per-step random streams are exercised too.
  const cfg = resolveConfig({}, {
    model: "baseline",
    limit: 160,
    valSplit: 0.2,
    batch: 32,
    epochs: 2,
    dropout: 0.3,
    augment: true,
    schedule: "cosine",
  });
  const straight = await train(cfg, `${root}/straight`);
  const want = await weights(straight.model);
  straight.model.dispose();

  // 1 epoch, then resume to 2.
  const first = await train({ ...cfg, epochs: 1 }, `${root}/split`);
  first.model.dispose();
  const ck = await readCheckpoint(`${root}/split/checkpoints/last`);
  const resumed = await train(cfg, `${root}/split`, { resume: ck });
  assert.deepEqual(await weights(resumed.model), want);
  assert.deepEqual(resumed.history.map((h) => h.valAcc), straight.history.map((h) => h.valAcc));
  resumed.model.dispose();

  // Interrupted after 2 steps of epoch 1, then resumed.
  let steps = 0;
  const cut = await train(cfg, `${root}/cut`, { stopRequested: () => ++steps >= 2 });
  assert.ok(cut.interrupted);
  cut.model.dispose();
  const ck2 = await readCheckpoint(`${root}/cut/checkpoints/last`);
  assert.deepEqual([ck2.meta.state.epoch, ck2.meta.state.step], [0, 2]);
  const done = await train(cfg, `${root}/cut`, { resume: ck2 });
  assert.deepEqual(await weights(done.model), want);
  done.model.dispose();
});
