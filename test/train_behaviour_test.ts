// Training-loop behaviour through the public entry point (runTraining) on real Fashion-MNIST
// subsets, webgpu: early stopping leaves the best (not the last) weights, `enhanced` resumes bit
// for bit with its batch-norm moving statistics, and `enhanced` on the fused op learns.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { type FashionMnist, loadFashionMnist, PIXELS } from "../src/data/fashion_mnist.ts";
import { readCheckpoint, restoreWeights } from "../src/model/checkpoint.ts";
import { createModel, type Model } from "../src/model/model.ts";
import { resolveConfig, type TrainConfig } from "../src/train/config.ts";
import { prepareData, type PreparedData, runTraining } from "../src/train/loop.ts";
import { createProgress } from "../src/train/progress.ts";
import { LOCAL_DATA_DIR } from "./helpers/data_fixtures.ts";
import { trainingTest } from "./helpers/train_fixtures.ts";

let data: FashionMnist | undefined;
async function dataset() {
  return data ??= await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
}

// tfjs-webgpu's WEBGPU_MATMUL_PROGRAM_TYPE: 3 = MatMulPackedProgram.
const MATMUL_PACKED = 3;

const quiet = createProgress({ quiet: true, write: () => {} });

async function train(cfg: TrainConfig, outDir: string, prepared?: PreparedData, resume?: string) {
  await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
  return await runTraining(cfg, prepared ?? prepareData(await dataset(), cfg), {
    outDir,
    progress: quiet,
    log: () => {},
    resume: resume ? await readCheckpoint(resume) : undefined,
  });
}

async function weights(m: Model): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const v of m.variables) out.set(v.name, (await v.variable.data()) as Float32Array);
  return out;
}

/**
 * Bit-equal weight maps, else names of the variables that differ and the first difference
 * (node's deepEqual would build a diff of 468k floats).
 */
function sameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  const off: string[] = [];
  for (const [name, va] of a) {
    const vb = b.get(name);
    if (!vb || vb.length !== va.length) {
      off.push(`${name}: missing or resized`);
      continue;
    }
    const i = va.findIndex((v, k) => !Object.is(v, vb[k]));
    if (i >= 0) off.push(`${name}[${i}]: ${va[i]} vs ${vb[i]}`);
  }
  return off;
}

/** The weights stored in a checkpoint folder, by variable name. */
async function checkpointWeights(cfg: TrainConfig, dir: string) {
  const m = createModel(cfg.model, { ops: cfg.ops, seed: cfg.seed });
  restoreWeights(m, await readCheckpoint(dir));
  const w = await weights(m);
  m.dispose();
  return w;
}

/** argmax of the model's inference-mode predictions for images[idx]. */
async function predictLabels(m: Model, images: Uint8Array, idx: Int32Array): Promise<Uint8Array> {
  const px = new Float32Array(idx.length * PIXELS);
  idx.forEach((k, i) => {
    for (let p = 0; p < PIXELS; p++) px[i * PIXELS + p] = images[k * PIXELS + p] / 255;
  });
  const x = tf.tensor4d(px, [idx.length, 28, 28, 1]);
  const labels = tf.tidy(() => tf.argMax(m.predict(x), 1));
  const out = Uint8Array.from(await labels.data());
  tf.dispose([x, labels]);
  return out;
}

trainingTest(
  "train: early stopping leaves the best epoch's weights when the best is not the last",
  async (root) => {
    const cfg = resolveConfig({}, {
      model: "baseline",
      limit: 400,
      valSplit: 0.25,
      batch: 32,
      epochs: 1,
      schedule: "none",
      patience: 2,
    });
    const prepared = prepareData(await dataset(), cfg);
    // One epoch, then relabel the validation images with that model's own predictions: epoch 1
    // of a rerun (same seed, same training images, deterministic) scores 100% on them, and any
    // later epoch that changes a prediction scores less, so epoch 1 stays the best.
    const first = await train(cfg, `${root}/probe`, prepared);
    const predicted = await predictLabels(first.model, prepared.train.images, prepared.valIdx);
    first.model.dispose();
    const labels = prepared.train.labels.slice();
    prepared.valIdx.forEach((k, i) => labels[k] = predicted[i]);
    const relabelled = { ...prepared, train: { ...prepared.train, labels } };

    const full = { ...cfg, epochs: 6 };
    const r = await train(full, `${root}/run`, relabelled);
    const accs = r.history.map((h) => h.valAcc);
    assert.equal(accs[0], 1, `epoch 1 reproduces the probe's predictions: ${accs}`);
    assert.ok(accs.slice(1).every((a) => a < 1), `later epochs change predictions: ${accs}`);
    // patience 2: epochs 2 and 3 bring no gain, the run stops after epoch 3.
    assert.equal(r.stoppedEarly, true);
    assert.equal(r.history.length, 3);
    assert.equal(r.bestEpoch, 1);
    const got = await weights(r.model);
    const best = await checkpointWeights(full, `${root}/run/checkpoints/best`);
    const last = await checkpointWeights(full, `${root}/run/checkpoints/last`);
    assert.deepEqual(sameWeights(got, best), [], "the returned model holds the best weights");
    assert.ok(sameWeights(got, last).length > 0, "... not the last epoch's");
    const again = await predictLabels(r.model, relabelled.train.images, prepared.valIdx);
    assert.deepEqual(again, predicted, "best weights predict as epoch 1 did");
    r.model.dispose();
  },
);

trainingTest(
  "train: enhanced (fused) resumes bit for bit, batch-norm moving statistics included",
  async (root) => {
    // initTf (trainingTest calls it) pins tfjs-webgpu's packed matMul: its split-K program
    // (float atomics, picked for enhanced's dense1, K = 3136) made two identical runs differ in
    // the last bits.
    assert.equal(tf.env().get("WEBGPU_MATMUL_PROGRAM_TYPE"), MATMUL_PACKED);
    const cfg = resolveConfig({}, {
      model: "enhanced",
      limit: 160,
      valSplit: 0.2,
      batch: 32,
      epochs: 2,
    });
    assert.equal(cfg.ops, "fused");
    const straight = await train(cfg, `${root}/straight`);
    const want = await weights(straight.model);
    straight.model.dispose();
    const stats = [...want.keys()].filter((k) => k.includes("moving_"));
    assert.equal(stats.length, 8, "4 layers x moving mean/variance");
    for (const k of stats) {
      const init = k.endsWith("moving_mean") ? 0 : 1;
      assert.ok(want.get(k)!.some((v) => v !== init), `${k} was updated by training`);
    }

    const first = await train({ ...cfg, epochs: 1 }, `${root}/split`);
    first.model.dispose();
    const resumed = await train(cfg, `${root}/split`, undefined, `${root}/split/checkpoints/last`);
    assert.deepEqual(sameWeights(await weights(resumed.model), want), []);
    assert.deepEqual(
      resumed.history.map((h) => [h.loss, h.valLoss, h.valAcc]),
      straight.history.map((h) => [h.loss, h.valLoss, h.valAcc]),
    );
    resumed.model.dispose();
  },
);

trainingTest(
  "train: enhanced on the fused op learns well above chance from 800 images in 2 epochs",
  async (out) => {
    const cfg = resolveConfig({}, { model: "enhanced", limit: 800, batch: 32, epochs: 2 });
    assert.equal(cfg.ops, "fused");
    const r = await train(cfg, out);
    const last = r.history.at(-1)!;
    // Chance is 0.1 (10 balanced classes, stratified validation split of 80 images).
    assert.ok(last.valAcc >= 0.5, `validation accuracy ${last.valAcc}`);
    assert.ok(r.history[1].loss < r.history[0].loss, "training loss falls");
    console.log(`  enhanced, 720 training images, 2 epochs: val acc ${last.valAcc}`);
    r.model.dispose();
  },
);
