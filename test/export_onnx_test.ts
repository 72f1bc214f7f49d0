// ONNX export: for all three models, a checkpoint made here (seeded init, then every bias, gamma,
// beta and moving statistic set to seeded non-trivial values, so a folding or layout mistake
// shows) is exported and run in ONNX Runtime on real test images, against our own inference path
// (the fused WGSL kernels on webgpu). Plus: refused checkpoints write nothing, replacement is
// atomic, and the CLI (export, predict --onnx) end to end with ONNX Runtime's warnings on.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { CheckpointError, loadModelForInference, saveCheckpoint } from "../src/model/checkpoint.ts";
import { CLASS_NAMES, loadFashionMnist, type Split } from "../src/data/fashion_mnist.ts";
import { imagesToTensor, labelsToOneHot, limitSplit } from "../src/data/dataset.ts";
import { predictProbabilities } from "../src/eval/inference.ts";
import { argmaxRows } from "../src/eval/metrics.ts";
import { exportToOnnxFile } from "../src/export/export_run.ts";
import { EXPORT_PLANS } from "../src/export/onnx_export.ts";
import { decodeModel } from "../src/export/onnx_proto.ts";
import { onnxPredictProbabilities, openOnnxClassifier } from "../src/export/onnx_runtime.ts";
import { createModel, type Model, MODEL_NAMES, type ModelName } from "../src/model/model.ts";
import { BN_MOMENTUM } from "../src/model/layers.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { initTf } from "../src/tf/setup.ts";
import { Rng } from "../src/random.ts";
import { HAVE_REAL_DATA, withTempDir } from "./helpers/data_fixtures.ts";
import { fmnist } from "./helpers/cli.ts";

const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };
const IMAGES = 300;
const TRAIN_STEPS = 3;
const TRAIN_BATCH = 16;
const CALIBRATION_BATCH = 64;
/** Absolute, on probabilities: float32 sums in another order (ORT's im2col GEMM vs our tiles). */
const PROB_TOLERANCE = 1e-4;
const STANDARD_OPS = new Set([
  "Transpose",
  "Conv",
  "Relu",
  "MaxPool",
  "Flatten",
  "GlobalAveragePool",
  "Gemm",
  "Softmax",
]);

if (!HAVE_REAL_DATA) {
  console.log(
    "export_onnx_test: the ONNX Runtime comparison and CLI tests are ignored: no Fashion-MNIST " +
      "in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)",
  );
}

/**
 * A checkpoint of `name` in `runDir/checkpoints/best`: seeded init, then biases/beta in
 * [-0.2, 0.2], gamma in [0.6, 1.4], moving mean in [-0.3, 0.3], moving variance in [0.3, 3]
 * (init leaves them 0/1, where a missing mean, a variance taken for a std, or a dropped bias
 * would go unnoticed); with `train`, a few Adam steps on real images, and moving statistics
 * measured on real images.
 */
async function makeCheckpoint(
  name: ModelName,
  runDir: string,
  seed: number,
  train?: Split,
): Promise<string> {
  const model = createModel(name, { seed });
  const rng = new Rng(seed);
  const range = (lo: number, hi: number) => () => lo + (hi - lo) * rng.next();
  const fill: [RegExp, () => number][] = [
    [/\/(bias|beta)$/, range(-0.2, 0.2)],
    [/\/gamma$/, range(0.6, 1.4)],
    [/\/moving_mean$/, range(-0.3, 0.3)],
    [/\/moving_variance$/, range(0.3, 3)],
  ];
  for (const v of model.variables) {
    const f = fill.find(([re]) => re.test(v.name))?.[1];
    if (!f) continue;
    const t = tf.tensor(Float32Array.from({ length: v.variable.size }, f), v.variable.shape);
    v.variable.assign(t);
    t.dispose();
  }
  if (train) {
    await trainSteps(model, train);
    calibrateBatchNorm(model, train);
  }
  const dir = `${runDir}/checkpoints/best`;
  await saveCheckpoint(dir, model, { config: { model: name } });
  model.dispose();
  return dir;
}

/** A few Adam steps on real images: weights as a (briefly) trained model's, not init's. */
async function trainSteps(model: Model, train: Split) {
  const optimizer = tf.train.adam(1e-3);
  const step = makeTrainStep(model, optimizer);
  for (let i = 0; i < TRAIN_STEPS; i++) {
    const idx = Int32Array.from({ length: TRAIN_BATCH }, (_, j) => i * TRAIN_BATCH + j);
    const x = imagesToTensor(train, idx), y = labelsToOneHot(train, idx);
    const loss = step(x, y);
    await loss.data();
    tf.dispose([x, y, loss]);
  }
  optimizer.dispose();
}

/**
 * Sets the moving statistics to real batch statistics: zeroed, one training-mode forward pass on
 * real images (the layers' moving-average update then holds (1 - momentum) * batch statistic),
 * scaled back. Random statistics would leave a deep model predicting one or two classes.
 */
function calibrateBatchNorm(model: Model, train: Split) {
  const stats = model.variables.filter((v) => /\/moving_(mean|variance)$/.test(v.name));
  if (stats.length === 0) return;
  tf.tidy(() => {
    for (const v of stats) v.variable.assign(tf.zerosLike(v.variable));
    const x = imagesToTensor(train, Int32Array.from({ length: CALIBRATION_BATCH }, (_, i) => i));
    model.apply(x, true);
    for (const v of stats) v.variable.assign(tf.mul(v.variable, 1 / (1 - BN_MOMENTUM)));
  });
}

async function ours(runDir: string, test: Split): Promise<Float32Array> {
  const { model } = await loadModelForInference(runDir);
  try {
    return await predictProbabilities(model, test, 100);
  } finally {
    model.dispose();
  }
}

Deno.test({
  name: `export: baseline, enhanced, wide in ONNX Runtime match our webgpu inference (${IMAGES} ` +
    "test images)",
  ignore: !HAVE_REAL_DATA,
  ...GPU_TEST,
  fn: async () => {
    await initTf("webgpu");
    const data = await loadFashionMnist({});
    const test = limitSplit(data.test, IMAGES);
    await withTempDir(async (root) => {
      for (const [i, name] of MODEL_NAMES.entries()) {
        const runDir = `${root}/${name}`;
        const started = performance.now();
        const ckDir = await makeCheckpoint(name, runDir, 11 + i, data.train);
        const trainS = (performance.now() - started) / 1000;
        // As `deno task eval` leaves it: the export carries this checkpoint's test accuracy.
        await Deno.writeTextFile(
          `${runDir}/metrics.json`,
          JSON.stringify({ checkpoint: ckDir, accuracy: 0.1234 + i / 100, n: 777 }),
        );
        const r = await exportToOnnxFile(runDir);
        assert.equal(r.out, `${runDir}/model.onnx`);

        const proto = decodeModel(await Deno.readFile(r.out));
        const meta = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
        assert.deepEqual(JSON.parse(meta.class_names), CLASS_NAMES);
        assert.equal(meta.model, name);
        assert.equal(Number(meta.test_accuracy), 0.1234 + i / 100);
        assert.equal(meta.test_images, "777");
        const ops = (proto.graph?.node ?? []).map((n) => String(n.opType));
        for (const op of ops) assert.ok(STANDARD_OPS.has(op), `${name}: operator ${op}`);
        assert.equal(ops.includes("GlobalAveragePool"), name === "wide");
        assert.deepEqual((proto.graph?.input ?? []).map((v) => v.name), ["images"]);

        const onnx = await openOnnxClassifier(r.out);
        const theirs = await onnxPredictProbabilities(onnx, test, 100);
        await onnx.close();
        const mine = await ours(runDir, test);
        let maxDiff = 0;
        for (let j = 0; j < mine.length; j++) {
          maxDiff = Math.max(maxDiff, Math.abs(mine[j] - theirs[j]));
        }
        const a = argmaxRows(mine, 10), b = argmaxRows(theirs, 10);
        const agree = a.filter((c, j) => c === b[j]).length / test.count;
        const classes = new Set(b).size;
        console.log(
          `  ${name}: max |p_ours - p_onnx| ${maxDiff.toExponential(2)}, top-1 agreement ` +
            `${(100 * agree).toFixed(2)}%, ${classes} classes predicted (fixture ${
              trainS.toFixed(1)
            } s, ` +
            `compare ${((performance.now() - started) / 1000 - trainS).toFixed(1)} s)`,
        );
        assert.ok(maxDiff <= PROB_TOLERANCE, `${name}: probabilities differ by ${maxDiff}`);
        assert.ok(agree >= 0.999, `${name}: top-1 agreement ${agree}`);
        // A degenerate fixture (all inputs to one class) would make the agreement meaningless.
        assert.ok(classes >= 3, `${name}: only ${classes} classes predicted`);
      }
    }, "fmnist-onnx-");
  },
});

Deno.test({
  name: "export: plans cover every model variable; bad checkpoints refused before writing; " +
    "replacement is atomic",
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    // Each plan names exactly its model's variables (export also checks this on every run).
    for (const name of MODEL_NAMES) {
      const m = createModel(name);
      const planned = EXPORT_PLANS[name].flatMap((s) =>
        "name" in s
          ? s.kind === "convBnRelu"
            ? ["kernel", "gamma", "beta", "moving_mean", "moving_variance"].map((p) =>
              `${s.name}/${p}`
            )
            : [`${s.name}/kernel`, `${s.name}/bias`]
          : []
      );
      assert.deepEqual(planned.sort(), m.variables.map((v) => v.name).sort(), name);
      m.dispose();
    }

    await withTempDir(async (root) => {
      const ckDir = await makeCheckpoint("baseline", root, 5);
      const out = `${root}/model.onnx`;
      await exportToOnnxFile(root, { out });
      const before = await Deno.readFile(out);
      const inodeBefore = (await Deno.stat(out)).ino;

      // Mismatched shapes (same byte count, so only the model check can catch it).
      const jsonPath = `${ckDir}/checkpoint.json`;
      const good = await Deno.readTextFile(jsonPath);
      const meta = JSON.parse(good);
      meta.tensors.find((t: { name: string }) => t.name === "conv1/kernel").shape = [3, 3, 32, 1];
      await Deno.writeTextFile(jsonPath, JSON.stringify(meta));
      await assert.rejects(
        exportToOnnxFile(root, { out }),
        (e: Error) =>
          e instanceof CheckpointError && e.message.includes(jsonPath) &&
          /variable "conv1\/kernel" has shape \[3,3,32,1\], the model wants \[3,3,1,32\]/.test(
            e.message,
          ),
      );
      // Unknown model.
      await Deno.writeTextFile(jsonPath, JSON.stringify({ ...JSON.parse(good), model: "resnet" }));
      await assert.rejects(
        exportToOnnxFile(root, { out }),
        (e: Error) =>
          e instanceof CheckpointError && e.message.includes(jsonPath) &&
          e.message.includes('unknown model "resnet"'),
      );
      // An opset out of range, and --out naming a folder.
      await Deno.writeTextFile(jsonPath, good);
      await assert.rejects(exportToOnnxFile(root, { out, opset: 9 }), /--opset must be/);
      await assert.rejects(exportToOnnxFile(root, { out: root }), /is a folder/);
      await assert.rejects(
        exportToOnnxFile(root, { out: `${root}/nope/m.onnx` }),
        /does not exist/,
      );
      assert.deepEqual(await Deno.readFile(out), before, "a refused export left the file alone");

      // A good export replaces the file by rename (a new inode), leaving no temp file behind.
      await exportToOnnxFile(root, { out, opset: 17 });
      assert.notEqual((await Deno.stat(out)).ino, inodeBefore);
      assert.equal(Number(decodeModel(await Deno.readFile(out)).opsetImport[0].version), 17);
      const names = [...Deno.readDirSync(root)].map((e) => e.name).sort();
      assert.deepEqual(names, ["checkpoints", "model.onnx"]);

      // A file that is not ONNX is refused by name.
      await Deno.writeTextFile(`${root}/bogus.onnx`, "not a model");
      await assert.rejects(openOnnxClassifier(`${root}/bogus.onnx`), /bogus\.onnx: /);
    }, "fmnist-onnx-err-");
  },
});

Deno.test({
  name: "export CLI + predict --onnx: same top-3 as predict --run, no ONNX Runtime warnings",
  ignore: !HAVE_REAL_DATA,
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    await withTempDir(async (root) => {
      await makeCheckpoint("enhanced", root, 9);
      const ex = await fmnist("export", "--run", root, "--opset", "15", "--logits");
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /wrote .*model\.onnx: .* opset 15, .* checked in ONNX Runtime/);
      assert.doesNotMatch(ex.stderr, /\[[WE]:onnxruntime/);
      const proto = decodeModel(await Deno.readFile(`${root}/model.onnx`));
      assert.deepEqual((proto.graph?.output ?? []).map((o) => o.name), ["probabilities", "logits"]);

      const images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
      const viaOnnx = await fmnist(
        "predict",
        "--onnx",
        `${root}/model.onnx`,
        "--limit",
        "8",
        images,
      );
      assert.equal(viaOnnx.code, 0, viaOnnx.stderr);
      // ONNX Runtime logs at warning level here: any warning (unknown operator, unused
      // initializer, type or shape trouble) lands on stderr as "[W:onnxruntime:...".
      assert.doesNotMatch(viaOnnx.stderr, /\[[WE]:onnxruntime/);
      const viaRun = await fmnist(
        "predict",
        "--run",
        root,
        "--backend",
        "cpu",
        "--limit",
        "8",
        images,
      );
      assert.equal(viaRun.code, 0, viaRun.stderr);
      assert.equal(viaOnnx.stdout.trim().split("\n").length, 8);
      assert.equal(viaOnnx.stdout, viaRun.stdout);

      const bad = await fmnist("export", "--run", `${root}/missing`);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /export: error: .*missing: no such file or folder/);
    }, "fmnist-onnx-cli-");
  },
});

/** Debian's python3-onnx (onnx.checker), when installed: an independent reading of the spec. */
const PYTHON_ONNX = (() => {
  try {
    return new Deno.Command("/usr/bin/python3", { args: ["-c", "import onnx"], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
if (!PYTHON_ONNX) {
  console.log(
    "export_onnx_test: onnx.checker test ignored: /usr/bin/python3 has no onnx module " +
      "(apt-get install python3-onnx)",
  );
}

Deno.test({
  name: "export: onnx.checker (full check, shape inference) passes for every model at opsets " +
    "11, 13, 17",
  ignore: !PYTHON_ONNX,
  ...GPU_TEST,
  fn: async () => {
    await initTf("cpu");
    await withTempDir(async (root) => {
      const files: string[] = [];
      for (const [i, name] of MODEL_NAMES.entries()) {
        await makeCheckpoint(name, `${root}/${name}`, 21 + i);
        for (const opset of [11, 13, 17]) {
          const out = `${root}/${name}-${opset}.onnx`;
          await exportToOnnxFile(`${root}/${name}`, { out, opset, logits: opset === 17 });
          files.push(out);
        }
      }
      const script = "import sys, onnx\n" +
        "for path in sys.argv[1:]:\n" +
        "    m = onnx.load(path)\n" +
        "    onnx.checker.check_model(m, full_check=True)\n" +
        "    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)\n" +
        "    print('ok', path)\n";
      const r = new Deno.Command("/usr/bin/python3", { args: ["-c", script, ...files] })
        .outputSync();
      const dec = new TextDecoder();
      assert.ok(r.success, dec.decode(r.stderr));
      assert.equal(dec.decode(r.stdout).trim().split("\n").length, files.length);
    }, "fmnist-onnx-checker-");
  },
});
