// Checkpoint save/load: exact round trip of weights and Adam state, atomic layout, clear errors.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel, type Model } from "../src/model/model.ts";
import {
  CheckpointError,
  loadModelForInference,
  readCheckpoint,
  restoreWeights,
  saveCheckpoint,
} from "../src/model/checkpoint.ts";
import { restoreOptimizer, saveTrainingCheckpoint } from "../src/train/checkpointing.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { Rng } from "../src/random.ts";

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
  await saveTrainingCheckpoint(`${dir}/checkpoints/last`, a, optA, {
    config: { model: "baseline" },
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

/**
 * A checkpoint in the layout written before Adam's state left src/model/checkpoint.ts (revision
 * be6abbb), built here from that layout: checkpoint.json with the weights' table, then an
 * `optimizer` section {type: "adam", iterations, accBeta1, accBeta2, tensors: every trainable
 * variable's "<name>/m", then every "<name>/v"}; weights.bin holding the weights, then the
 * moments, float32 little-endian at the listed offsets.
 */
async function writeOldLayout(dir: string, model: Model, seed: number) {
  // Seeded values, not the model's: a restore that kept the fresh init would show.
  const rng = new Rng(seed);
  const chunks: Float32Array[] = [];
  let offset = 0;
  const entry = (name: string, shape: number[], data: Float32Array) => {
    chunks.push(data);
    const e = { name, shape, offset };
    offset += data.byteLength;
    return e;
  };
  const tensors = [];
  for (const v of model.variables) {
    const values = Float32Array.from({ length: v.variable.size }, () => rng.next() - 0.5);
    tensors.push(entry(v.name, [...v.variable.shape], values));
  }
  const trainable = model.variables.filter((v) => v.trainable);
  const moments = [];
  for (const kind of ["m", "v"]) {
    for (const v of trainable) {
      const values = Float32Array.from({ length: v.variable.size }, () => rng.next() * 0.01);
      moments.push(entry(`${v.name}/${kind}`, [...v.variable.shape], values));
    }
  }
  const meta = {
    format: "fmnist-checkpoint/1",
    model: model.name,
    modelConfig: model.config,
    config: { model: model.name },
    tensors,
    optimizer: {
      type: "adam",
      iterations: 7,
      accBeta1: Math.fround(0.9 ** 7),
      accBeta2: Math.fround(0.999 ** 7),
      tensors: moments,
    },
    state: { epoch: 3 },
    savedAt: "2026-12-01T00:00:00.000Z",
  };
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bytes.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at);
    at += c.byteLength;
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/weights.bin`, bytes);
  await Deno.writeTextFile(`${dir}/checkpoint.json`, JSON.stringify(meta, null, 1) + "\n");
  return { meta, weights: chunks.slice(0, tensors.length), moments: chunks.slice(tensors.length) };
}

Deno.test("checkpoint: the layout written before the optimizer moved out reads, resumes and is rewritten byte for byte", async () => {
  await initTf("cpu");
  const dir = await Deno.makeTempDir({ prefix: "ckpt_old_" });
  try {
    const source = createModel("baseline", { seed: 4 });
    const old = await writeOldLayout(`${dir}/old`, source, 11);
    const ck = await readCheckpoint(`${dir}/old`);
    const model = createModel(ck.meta.model, ck.meta.modelConfig);
    const opt = tf.train.adam(1e-3);
    restoreWeights(model, ck);
    await restoreOptimizer(opt, model, ck);
    assert.deepEqual(await snapshot(model), old.weights);
    assert.equal(opt.iterations, 7);
    const [, ...restored] = await optimizerSnapshot(opt);
    assert.deepEqual(restored, old.moments);

    // Saved again by today's code: the same files (but for the time stamp).
    await saveTrainingCheckpoint(`${dir}/new`, model, opt, {
      config: ck.meta.config,
      state: ck.meta.state,
    });
    assert.deepEqual(
      await Deno.readFile(`${dir}/new/weights.bin`),
      await Deno.readFile(`${dir}/old/weights.bin`),
    );
    const json = JSON.parse(await Deno.readTextFile(`${dir}/new/checkpoint.json`));
    assert.deepEqual({ ...json, savedAt: old.meta.savedAt }, old.meta);
    const inference = await loadModelForInference(`${dir}/old`);
    assert.deepEqual(await snapshot(inference.model), old.weights);
    [source, model, inference.model].forEach((m) => m.dispose());
    opt.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkpoint: loading weights does not import the optimizer or anything of training", async () => {
  for (const entry of ["src/model/checkpoint.ts", "src/serve/page/app.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.ok(out.success, `deno info ${entry}`);
    const modules: { specifier: string }[] = JSON.parse(new TextDecoder().decode(out.stdout))
      .modules;
    assert.ok(modules.some((m) => m.specifier.endsWith("/src/model/checkpoint.ts")), entry);
    const training = modules.filter((m) => m.specifier.includes("/src/train/"));
    assert.deepEqual(training.map((m) => m.specifier), [], `${entry} imports training modules`);
  }
});
