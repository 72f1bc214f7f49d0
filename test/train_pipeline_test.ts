// The pipelined training loop (src/train/loop.ts): the training split resident on the device
// with batches gathered there, and the steps' loss and accuracy read back every few steps. Same
// run as the per-step path (host batches, a read after every step): weights and Adam state bit
// for bit, the history's loss and accuracy, the checkpoints; a stop request between read-backs
// still lands on the step it was made after; tensors and GPU bytes flat over the steps.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { type FashionMnist, loadFashionMnist } from "../src/data/fashion_mnist.ts";
import { readCheckpoint } from "../src/model/checkpoint.ts";
import type { Model } from "../src/model/model.ts";
import { resolveConfig, type TrainConfig } from "../src/train/config.ts";
import { type LoopOptions, prepareData, runTraining } from "../src/train/loop.ts";
import { createProgress, type Progress } from "../src/train/progress.ts";
import { LOCAL_DATA_DIR } from "./helpers/data_fixtures.ts";
import { trainingTest } from "./helpers/train_fixtures.ts";

let data: FashionMnist | undefined;
async function dataset() {
  return data ??= await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
}

const quiet = createProgress({ quiet: true, write: () => {} });

async function train(cfg: TrainConfig, outDir: string, extra: Partial<LoopOptions> = {}) {
  await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
  return await runTraining(cfg, prepareData(await dataset(), cfg), {
    outDir,
    progress: quiet,
    log: () => {},
    ...extra,
  });
}

async function weights(m: Model): Promise<Float32Array[]> {
  return await Promise.all(m.variables.map(async (v) => (await v.variable.data()) as Float32Array));
}

const PER_STEP: Partial<LoopOptions> = { residentData: false, readBack: { steps: 1, ms: 0 } };
const PIPELINED: Partial<LoopOptions> = { readBack: { steps: 3, ms: 1e9 } };

// Dropout, augmentation and a partial last batch (216 training images, batch 32), so the
// per-step random streams and the batch shapes are exercised.
const cfg = resolveConfig({}, {
  model: "enhanced",
  limit: 240,
  valSplit: 0.1,
  batch: 32,
  epochs: 2,
  dropout: 0.3,
  augment: true,
  schedule: "cosine",
});

trainingTest(
  "train pipeline: resident data and batched read-backs give the per-step run",
  async (root) => {
    const before = tf.memory().numTensors;
    const old = await train(cfg, `${root}/per-step`, PER_STEP);
    // Tensors alive at each progress line: after a read-back nothing of the steps is pending.
    const live: number[] = [];
    const counting: Progress = { ...quiet, step: () => live.push(tf.memory().numTensors) };
    const gpuBytes: number[] = [];
    const countingBytes: Progress = {
      ...counting,
      step: (i) => {
        counting.step(i);
        gpuBytes.push((tf.memory() as tf.MemoryInfo & { numBytesInGPU: number }).numBytesInGPU);
      },
    };
    const now = await train(cfg, `${root}/pipelined`, { ...PIPELINED, progress: countingBytes });
    try {
      assert.deepEqual(await weights(now.model), await weights(old.model));
      const strip = (h: typeof old.history) => h.map(({ epochTimeS: _, ...rest }) => rest);
      assert.deepEqual(strip(now.history), strip(old.history));
      const a = await readCheckpoint(`${root}/per-step/checkpoints/last`);
      const b = await readCheckpoint(`${root}/pipelined/checkpoints/last`);
      assert.deepEqual(b.meta.state, a.meta.state);
      assert.deepEqual(
        await Deno.readFile(`${root}/pipelined/checkpoints/last/weights.bin`),
        await Deno.readFile(`${root}/per-step/checkpoints/last/weights.bin`),
      );
      // 7 steps per epoch, 2 epochs: one progress line per step; flat after the first step.
      assert.equal(live.length, 14);
      assert.deepEqual(new Set(live.slice(1)).size, 1, `tensors per step: ${live}`);
      assert.deepEqual(new Set(gpuBytes.slice(1)).size, 1, `GPU bytes per step: ${gpuBytes}`);
    } finally {
      old.model.dispose();
      now.model.dispose();
    }
    assert.equal(tf.memory().numTensors, before, "the resident split and all steps disposed");
  },
);

trainingTest(
  "train pipeline: a stop request between read-backs stops after its step",
  async (root) => {
    let polls = 0;
    const cut = await train(cfg, `${root}/cut`, {
      ...PIPELINED,
      stopRequested: () => ++polls >= 5,
    });
    assert.ok(cut.interrupted);
    cut.model.dispose();
    const ck = await readCheckpoint(`${root}/cut/checkpoints/last`);
    // Stopped after step 5 of epoch 1, with steps 4 and 5 not yet read back when it was asked.
    assert.deepEqual([ck.meta.state.epoch, ck.meta.state.step], [0, 5]);
    assert.equal((ck.meta.state.running as { seen: number }).seen, 5 * 32);
    const done = await train(cfg, `${root}/cut`, { ...PIPELINED, resume: ck });
    const straight = await train(cfg, `${root}/straight`, PER_STEP);
    try {
      assert.deepEqual(await weights(done.model), await weights(straight.model));
    } finally {
      done.model.dispose();
      straight.model.dispose();
    }
  },
);
