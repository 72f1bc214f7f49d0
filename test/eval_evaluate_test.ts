import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { CLASS_NAMES, loadFashionMnist, PIXELS } from "../src/data/fashion_mnist.ts";
import { limitSplit } from "../src/data/dataset.ts";
import { nearestCentroidModel } from "./helpers/centroid_model.ts";
import { evaluateRun } from "../src/eval/evaluate.ts";
import { pngSize } from "../src/eval/render.ts";
import { initTf } from "../src/tf/setup.ts";
import { LOCAL_DATA_DIR, needsRealData } from "./helpers/data_fixtures.ts";

const HISTORY = [1, 2, 3].map((epoch) => ({
  epoch,
  loss: 1 / epoch,
  acc: 0.8 + epoch / 20,
  valLoss: 1.1 / epoch,
  valAcc: 0.78 + epoch / 40,
  lr: 0.001,
  epochTimeS: 1,
}));

Deno.test("evaluateRun: centroid model on 700 test images, files, tables, no leaks", {
  ignore: needsRealData("evaluateRun: centroid model on 700 test images, files, tables, no leaks"),
}, async () => {
  await initTf("cpu");
  const data = await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
  const train = limitSplit(data.train, 3000);
  const test = limitSplit(data.test, 700);
  const runDir = await Deno.makeTempDir({ prefix: "fmnist-eval-" });
  try {
    await Deno.writeTextFile(`${runDir}/history.json`, JSON.stringify(HISTORY));
    const before = tf.memory().numTensors;
    const model = nearestCentroidModel(train);
    const lines: string[] = [];
    const result = await evaluateRun(runDir, {
      testSplit: test,
      batchSize: 300, // 700 = 300 + 300 + 100: exercises the partial last batch
      loadModel: () => Promise.resolve({ model, config: { model: "centroid" }, runDir }),
      log: (m) => lines.push(m),
    });
    assert.equal(tf.memory().numTensors, before, "tensors leaked");

    // Independent check: nearest centroid in plain JS gives the same accuracy.
    const centroids = new Float64Array(10 * PIXELS), counts = new Float64Array(10);
    for (let i = 0; i < train.count; i++) {
      counts[train.labels[i]]++;
      for (let p = 0; p < PIXELS; p++) {
        centroids[train.labels[i] * PIXELS + p] += train.images[i * PIXELS + p] / 255;
      }
    }
    let hits = 0;
    for (let i = 0; i < test.count; i++) {
      let best = 0, bestD = Infinity;
      for (let c = 0; c < 10; c++) {
        let d = 0;
        for (let p = 0; p < PIXELS; p++) {
          const diff = test.images[i * PIXELS + p] / 255 - centroids[c * PIXELS + p] / counts[c];
          d += diff * diff;
        }
        if (d < bestD) [best, bestD] = [c, d];
      }
      if (best === test.labels[i]) hits++;
    }
    assert.ok(Math.abs(result.accuracy - hits / test.count) <= 2 / test.count);
    assert.ok(result.accuracy > 0.5 && result.accuracy < 0.95, `accuracy ${result.accuracy}`);
    assert.equal(result.n, 700);

    const saved = JSON.parse(await Deno.readTextFile(`${runDir}/metrics.json`));
    assert.equal(saved.accuracy, result.accuracy);
    assert.deepEqual(saved.confusion, result.confusion);
    assert.equal(saved.perClass.length, CLASS_NAMES.length);
    for (
      const id of [
        "training_curves",
        "confusion_matrix",
        "per_class_f1",
        "correct_samples",
        "misclassified_samples",
      ]
    ) {
      const png = await Deno.readFile(`${runDir}/plots/${id}.png`);
      assert.ok(pngSize(png).width > 100, `${id}.png too small`);
      assert.match(await Deno.readTextFile(`${runDir}/plots/${id}.svg`), /^<svg/);
    }
    const html = await Deno.readTextFile(`${runDir}/report.html`);
    assert.match(html, /What to try next/);
    assert.equal(html.match(/<img /g)?.length, 5);
    // Aligned per-class table on the log, with every class name.
    const out = lines.join("\n");
    for (const name of CLASS_NAMES) assert.ok(out.includes(name), `${name} missing from tables`);
    assert.match(out, /class\s+precision\s+recall\s+f1\s+support/);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
