// `deno task export` end to end: resolve the checkpoint of a run folder, build the ONNX model, load
// it in ONNX Runtime and run a probe batch, and only then write the file (temp + rename), so a
// refused checkpoint or a model ONNX Runtime cannot run leaves any previous file untouched.

import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { readCheckpoint, resolveCheckpoint } from "../model/checkpoint.ts";
import { IMAGE_SIZE, loadFashionMnist } from "../data/fashion_mnist.ts";
import { argmaxRows } from "../eval/metrics.ts";
import { exportCheckpoint, type ExportOptions, type ExportResult } from "./onnx_export.ts";
import { onnxPredictProbabilities, openOnnxClassifier } from "./onnx_runtime.ts";

export interface ExportRunResult extends ExportResult {
  checkpoint: string;
  out: string;
}

/**
 * Exports the checkpoint of `source` (a run folder -> its best checkpoint, else last; a checkpoint
 * folder; a checkpoint.json) to `out` (default `<run folder>/model.onnx`).
 */
export async function exportToOnnxFile(
  source: string,
  opts: ExportOptions & { out?: string } = {},
): Promise<ExportRunResult> {
  const { dir, runDir } = await resolveCheckpoint(source, "best");
  const out = opts.out ?? `${runDir}/model.onnx`;
  await checkOutputPath(out);
  const ck = await readCheckpoint(dir);
  const testAccuracy = opts.testAccuracy ?? await readTestAccuracy(runDir, ck.dir);
  const result = await exportCheckpoint(ck, { ...opts, testAccuracy });
  await verifyInOnnxRuntime(result.bytes, out);
  await writeFileAtomic(out, result.bytes);
  return { ...result, checkpoint: ck.dir, out };
}

/** The output must be a file path in an existing folder (checked before any work). */
async function checkOutputPath(out: string): Promise<void> {
  const slash = out.lastIndexOf("/");
  const parent = slash < 0 ? "." : slash === 0 ? "/" : out.slice(0, slash);
  const info = await Deno.stat(parent).catch(() => null);
  if (!info?.isDirectory) throw new UsageError(`--out ${out}: folder ${parent} does not exist`);
  const existing = await Deno.stat(out).catch(() => null);
  if (existing?.isDirectory) throw new UsageError(`--out ${out}: is a folder, expected a file`);
}

/**
 * The test accuracy from the run's metrics.json (written by `deno task eval` or at the end of
 * training), when it was measured on this checkpoint.
 */
export async function readTestAccuracy(
  runDir: string,
  checkpointDir: string,
): Promise<{ accuracy: number; images: number } | undefined> {
  try {
    const m = JSON.parse(await Deno.readTextFile(`${runDir}/metrics.json`));
    const same = typeof m.checkpoint === "string" &&
      (await Deno.realPath(m.checkpoint).catch(() => m.checkpoint)) ===
        (await Deno.realPath(checkpointDir).catch(() => checkpointDir));
    if (same && typeof m.accuracy === "number" && typeof m.n === "number") {
      return { accuracy: m.accuracy, images: m.n };
    }
  } catch {
    // no metrics.json, or not ours: the export simply carries no test accuracy
  }
  return undefined;
}

/** Loads the model in ONNX Runtime and checks a probe batch gives [2, 10] rows summing to 1. */
async function verifyInOnnxRuntime(bytes: Uint8Array, out: string): Promise<void> {
  const what = `${out} (not written)`;
  const model = await openOnnxClassifier(bytes, what);
  try {
    const probe = new Float32Array(2 * IMAGE_SIZE * IMAGE_SIZE).fill(0.5, IMAGE_SIZE * IMAGE_SIZE);
    const p = await model.probabilities(probe, 2);
    const k = model.classNames.length;
    for (let r = 0; r < 2; r++) {
      const sum = p.subarray(r * k, (r + 1) * k).reduce((a, b) => a + b, 0);
      if (!(Math.abs(sum - 1) < 1e-4)) {
        throw new Error(`${what}: ONNX Runtime gives probabilities summing to ${sum}`);
      }
    }
  } finally {
    await model.close();
  }
}

/** Accuracy of an exported model in ONNX Runtime on the Fashion-MNIST test set (`--verify`). */
export async function onnxTestAccuracy(
  onnxPath: string,
  opts: { dataDir?: string; log?: (m: string) => void } = {},
): Promise<{ accuracy: number; images: number; seconds: number }> {
  const test = (await loadFashionMnist({ dataDir: opts.dataDir, log: opts.log })).test;
  const started = performance.now();
  const model = await openOnnxClassifier(onnxPath);
  try {
    const probs = await onnxPredictProbabilities(model, test);
    const predicted = argmaxRows(probs, model.classNames.length);
    const correct = predicted.filter((c, i) => c === test.labels[i]).length;
    return {
      accuracy: correct / test.count,
      images: test.count,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await model.close();
  }
}
