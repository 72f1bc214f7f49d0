// Checkpoint save/load: exact round trip of weights and Adam state, atomic layout, clear errors.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel, type Model } from "../src/model/model.ts";
import {
  CheckpointError,
  loadModelForInference,
  readCheckpoint,
  restoreOptimizer,
  restoreWeights,
  saveCheckpoint,
} from "../src/model/checkpoint.ts";
import { makeTrainStep } from "../src/train/step.ts";

async function snapshot(m: Model): Promise<Float32Array[]> {
  return await Promise.all(m.variables.map(async (v) => (await v.variable.data()) as Float32Array));
}

async function optimizerSnapshot(opt: tf.Optimizer): Promise<Float32Array[]> {
  const ws = await opt.getWeights();
  const out = await Promise.all(ws.map(async (w) => Float32Array.from(await w.tensor.data())));
  ws[0].tensor.dispose();
  return out;
}

function tinyBatch(): [tf.Tensor4D, tf.Tensor2D] {
  const x = tf.randomUniform([2, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d([3, 7], "int32"), 10) as tf.Tensor2D);
  return [x, y];
}

Deno.test("checkpoint: weights and Adam state round-trip exactly; training continues identically", async () => {
  await initTf("cpu");
  const dir = await Deno.makeTempDir({ prefix: "ckpt_test_" });
  const [x, y] = tinyBatch();
  const a = createModel("baseline", { seed: 2 });
  const optA = tf.train.adam(1e-3);
  const stepA = makeTrainStep(a, optA);
  tf.dispose(stepA(x, y));
  await saveCheckpoint(`${dir}/checkpoints/last`, a, {
    config: { model: "baseline" },
    optimizer: optA,
    state: { epoch: 1 },
  });
  const ck = await readCheckpoint(`${dir}/checkpoints/last`);
  assert.equal(ck.meta.model, "baseline");
  assert.equal(ck.meta.optimizer?.iterations, 1);
  assert.deepEqual(ck.meta.state, { epoch: 1 });

  const b = createModel("baseline", { seed: 99 }); // different init, overwritten by restore
  const optB = tf.train.adam(1e-3);
  restoreWeights(b, ck);
  await restoreOptimizer(optB, b, ck);
  assert.deepEqual(await snapshot(b), await snapshot(a));
  assert.deepEqual(await optimizerSnapshot(optB), await optimizerSnapshot(optA));
  // One more step on each: bit-identical (Adam's beta powers were restored too).
  tf.dispose(stepA(x, y));
  tf.dispose(makeTrainStep(b, optB)(x, y));
  assert.deepEqual(await snapshot(b), await snapshot(a));

  // Saving again replaces the folder whole and leaves no temp folders behind.
  await saveCheckpoint(`${dir}/checkpoints/last`, a, { config: {}, state: { epoch: 2 } });
  assert.deepEqual([...Deno.readDirSync(`${dir}/checkpoints`)].map((e) => e.name), ["last"]);
  const { model, runDir } = await loadModelForInference(dir); // no best: falls back to last
  assert.equal(runDir, dir);
  const [pa, pb] = [a.predict(x), model.predict(x)];
  assert.deepEqual(await pa.data(), await pb.data());
  tf.dispose([pa, pb, x, y]);
  [a, b, model].forEach((m) => m.dispose());
  optA.dispose();
  optB.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("checkpoint: missing, corrupt, truncated and other-model checkpoints give clear errors", async () => {
  await initTf("cpu");
  const dir = await Deno.makeTempDir({ prefix: "ckpt_err_" });
  const m = createModel("baseline");
  const ckDir = `${dir}/checkpoints/best`;
  await saveCheckpoint(ckDir, m, { config: {} });

  await assert.rejects(loadModelForInference(`${dir}/nope`), CheckpointError);
  await Deno.mkdir(`${dir}/empty`);
  await assert.rejects(loadModelForInference(`${dir}/empty`), /no checkpoint found/);

  const other = createModel("enhanced", { ops: "stock" });
  const ck = await readCheckpoint(ckDir);
  assert.throws(() => restoreWeights(other, ck), /for model "baseline", not "enhanced"/);
  other.dispose();

  const bin = await Deno.readFile(`${ckDir}/weights.bin`);
  await Deno.writeFile(`${ckDir}/weights.bin`, bin.subarray(0, bin.length - 8));
  await assert.rejects(loadModelForInference(dir), /weights\.bin: corrupt checkpoint/);
  await Deno.writeTextFile(`${ckDir}/checkpoint.json`, "{ not json");
  await assert.rejects(loadModelForInference(dir), /checkpoint\.json: corrupt checkpoint/);
  m.dispose();
  await Deno.remove(dir, { recursive: true });
});
