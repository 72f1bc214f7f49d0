// Test-set evaluation of a trained run: predictions in batches, metrics, pictures, report.
//
// Writes into the run folder: metrics.json, plots/{training_curves,confusion_matrix,per_class_f1,
// correct_samples,misclassified_samples}.{svg,png} and report.html (all atomically).

import * as tf from "@tensorflow/tfjs-core";
import { UsageError } from "../errors.ts";
import { CLASS_NAMES, loadFashionMnist, PIXELS, type Split } from "../data/fashion_mnist.ts";
import { limitSplit } from "../data/dataset.ts";
import { writeFileAtomic } from "../files.ts";
import { loadModelForInference, resolveCheckpoint } from "../model/checkpoint.ts";
import { type BackendName, currentAdapter, initTf } from "../tf/setup.ts";
import { suggestions } from "./advice.ts";
import { type InferenceModel, predictProbabilities } from "./inference.ts";
import {
  confusionMatrixSpec,
  f1BarSpec,
  type HistoryEntry,
  imageGridSpec,
  type Sample,
  trainingCurvesSpec,
} from "./charts.ts";
import { argmaxRows, type ClassificationMetrics, classificationMetrics } from "./metrics.ts";
import { pngRendererError, renderChart } from "./render.ts";
import { buildReport, type ReportChart } from "./report.ts";
import { confusionsTable, perClassTable } from "./tables.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

export interface LoadedModel {
  model: InferenceModel;
  config: Record<string, unknown>;
  runDir: string;
}

export interface EvaluateOptions {
  /** Fashion-MNIST folder (--data); default: the loader's search order. */
  dataDir?: string;
  /** Checkpoint folder or checkpoint.json to evaluate instead of the run's best checkpoint. */
  checkpoint?: string;
  /** Evaluate only the first N test images. */
  limit?: number;
  log?: (msg: string) => void;
  /** Initialise this backend first (the CLI passes --backend); default: keep the current one. */
  backend?: BackendName;
  batchSize?: number;
  /** Test split to use instead of loading Fashion-MNIST (tests). */
  testSplit?: Split;
  /** Model loader (tests); default loadModelForInference. */
  loadModel?: (path: string) => Promise<LoadedModel>;
  /** The tile plan to evaluate under (train passes its tuned one; default: the adapter's). */
  tiles?: TilePlan;
}

export interface EvaluationResult extends ClassificationMetrics {
  runDir: string;
  checkpoint: string;
  evalSeconds: number;
  suggestions: string[];
  /** Files written, relative to the run folder. */
  files: string[];
}

const GRID_CORRECT_PER_CLASS = 2;
const GRID_WRONG = 24;

async function readJson(path: string, log: (m: string) => void): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      log(`warning: ${path}: ignored (${(e as Error).message})`);
    }
    return undefined;
  }
}

async function readHistory(runDir: string, log: (m: string) => void): Promise<HistoryEntry[]> {
  const raw = await readJson(`${runDir}/history.json`, log);
  if (!Array.isArray(raw)) return [];
  return raw.filter((h) =>
    h && typeof h.epoch === "number" && typeof h.loss === "number" && typeof h.acc === "number"
  );
}

/** Two correct images per class, and the most confidently wrong predictions. */
function pickSamples(split: Split, predicted: Int32Array, probs: Float32Array) {
  const k = CLASS_NAMES.length;
  const sample = (i: number): Sample => ({
    pixels: split.images.slice(i * PIXELS, (i + 1) * PIXELS),
    index: i,
    trueName: CLASS_NAMES[split.labels[i]],
    predictedName: CLASS_NAMES[predicted[i]],
    confidence: probs[i * k + predicted[i]],
  });
  const perClass = new Array<number>(k).fill(0);
  const correct: Sample[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < split.count; i++) {
    const t = split.labels[i];
    if (predicted[i] !== t) wrong.push(i);
    else if (perClass[t] < GRID_CORRECT_PER_CLASS) {
      perClass[t]++;
      correct.push(sample(i));
    }
  }
  correct.sort((a, b) => split.labels[a.index] - split.labels[b.index] || a.index - b.index);
  wrong.sort((a, b) => probs[b * k + predicted[b]] - probs[a * k + predicted[a]] || a - b);
  return { correct, wrong: wrong.slice(0, GRID_WRONG).map(sample) };
}

function assertRunDir(runDir: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(runDir);
  } catch {
    throw new UsageError(`${runDir}: no such run folder`);
  }
  if (!info.isDirectory) throw new UsageError(`${runDir}: not a folder (expected a run folder)`);
}

/**
 * Evaluates a run's best checkpoint (or `opts.checkpoint`) on the Fashion-MNIST test set, prints
 * the per-class and top-confusion tables, and writes metrics.json, plots/ and report.html into
 * the run folder. `runDir` may be "" with `opts.checkpoint`: the checkpoint's run folder is used.
 */
export async function evaluateRun(
  runDir: string,
  opts: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const log = opts.log ?? console.log;
  const started = performance.now();
  if (opts.backend) await initTf(opts.backend);
  const source = opts.checkpoint ?? runDir;
  if (runDir) assertRunDir(runDir);
  else if (!opts.checkpoint) throw new UsageError("give a run folder (--run) or --checkpoint");
  const checkpoint = opts.loadModel ? source : (await resolveCheckpoint(source, "best")).dir;
  const loaded = await (opts.loadModel ?? loadModelForInference)(source);
  loaded.model.tiles ??= opts.tiles;
  if (!runDir) runDir = loaded.runDir;
  try {
    let test = opts.testSplit ?? (await loadFashionMnist({ dataDir: opts.dataDir, log })).test;
    if (opts.limit !== undefined) test = limitSplit(test, opts.limit);
    if (test.count === 0) throw new UsageError("--limit: no test images to evaluate");
    log(`evaluating ${checkpoint} on ${test.count} test images`);
    const probs = await predictProbabilities(loaded.model, test, opts.batchSize, checkpoint);
    const predicted = argmaxRows(probs, CLASS_NAMES.length);
    const metrics = classificationMetrics(test.labels, predicted, CLASS_NAMES, probs);
    const evalSeconds = (performance.now() - started) / 1000;
    const history = await readHistory(runDir, log);
    const advice = suggestions(metrics, history);

    log(
      `\naccuracy ${(100 * metrics.accuracy).toFixed(2)}%  macro F1 ${metrics.macro.f1.toFixed(4)}`,
    );
    log(`\n${perClassTable(metrics)}`);
    log(
      `\nmost confused (true -> predicted):\n${
        confusionsTable(metrics.topConfusions.slice(0, 10))
      }`,
    );

    const files = await writeOutputs(runDir, {
      metrics,
      history,
      samples: pickSamples(test, predicted, probs),
      advice,
      config: loaded.config,
      facts: {
        "run folder": runDir,
        checkpoint,
        "test images": `${test.count}${opts.limit !== undefined ? ` (--limit ${opts.limit})` : ""}`,
        backend: describeBackend(),
        "evaluated at": new Date().toISOString(),
        "evaluation time": `${evalSeconds.toFixed(1)} s`,
      },
    }, log);
    const result: EvaluationResult = {
      ...metrics,
      runDir,
      checkpoint,
      evalSeconds,
      suggestions: advice,
      files,
    };
    await writeFileAtomic(
      `${runDir}/metrics.json`,
      new TextEncoder().encode(
        JSON.stringify(
          {
            ...result,
            files: undefined,
            limit: opts.limit ?? null,
            backend: describeBackend(),
            config: loaded.config,
          },
          null,
          2,
        ) + "\n",
      ),
    );
    const svgs = files.filter((f) => f.endsWith(".svg")).length;
    const pngs = files.filter((f) => f.endsWith(".png")).length;
    log(`\nwrote metrics.json, report.html, ${svgs} SVG and ${pngs} PNG plots in ${runDir}`);
    return { ...result, files: ["metrics.json", ...files] };
  } finally {
    loaded.model.dispose();
  }
}

function describeBackend(): string {
  const a = currentAdapter();
  return a ? `${a.backend} (${a.description})` : tf.getBackend();
}

interface Outputs {
  metrics: ClassificationMetrics;
  history: HistoryEntry[];
  samples: { correct: Sample[]; wrong: Sample[] };
  advice: string[];
  config: Record<string, unknown>;
  facts: Record<string, string>;
}

async function writeOutputs(
  runDir: string,
  o: Outputs,
  log: (m: string) => void,
): Promise<string[]> {
  const { metrics: m } = o;
  const pngProblem = await pngRendererError();
  if (pngProblem) log(`warning: plots are written as SVG only: ${pngProblem}`);
  const specs: (ReportChart & { spec: Parameters<typeof renderChart>[0] })[] = [];
  const add = (id: string, title: string, spec: Parameters<typeof renderChart>[0], caption = "") =>
    specs.push({ id, title, svg: "", spec, caption });
  if (o.history.length > 0) {
    add(
      "training_curves",
      "Training curves",
      trainingCurvesSpec(o.history, "Loss, accuracy and learning rate per epoch"),
    );
  }
  add(
    "confusion_matrix",
    "Confusion matrix",
    confusionMatrixSpec(m.confusion, CLASS_NAMES, "Confusion matrix (test set)"),
    "Rows: true class; columns: predicted class; colour: share of the row.",
  );
  add("per_class_f1", "Per-class F1", f1BarSpec(m.perClass, "F1 per class (test set)"));
  if (o.samples.correct.length > 0) {
    add(
      "correct_samples",
      "Correctly classified",
      imageGridSpec(o.samples.correct, "Correctly classified (two per class)", 10),
    );
  }
  if (o.samples.wrong.length > 0) {
    add(
      "misclassified_samples",
      "Misclassified",
      imageGridSpec(o.samples.wrong, "Misclassified, most confident first"),
      "Each label: true class, predicted class and the model's probability for it.",
    );
  }
  await Deno.mkdir(`${runDir}/plots`, { recursive: true });
  const files: string[] = [];
  for (const s of specs) {
    const chart = await renderChart(s.spec);
    s.svg = chart.svg;
    await writeFileAtomic(`${runDir}/plots/${s.id}.svg`, new TextEncoder().encode(chart.svg));
    files.push(`plots/${s.id}.svg`);
    if (chart.png) {
      await writeFileAtomic(`${runDir}/plots/${s.id}.png`, chart.png);
      files.push(`plots/${s.id}.png`);
    }
  }
  const html = buildReport({
    title: `Evaluation: ${String(o.config.model ?? o.config.name ?? runDir)}`,
    facts: o.facts,
    config: o.config,
    metrics: m,
    charts: specs,
    suggestions: o.advice,
  });
  await writeFileAtomic(`${runDir}/report.html`, new TextEncoder().encode(html));
  files.push("report.html");
  return files;
}
