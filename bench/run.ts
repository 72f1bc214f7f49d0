// The benchmark run behind `deno task bench` (flags and output files: src/cmd/bench.ts):
// starts the backend, picks repeats and batch sizes for the adapter, runs the roofline, kernel
// and training suites and returns one result document.

import * as tf from "@tensorflow/tfjs-core";
import { UsageError } from "../src/errors.ts";
import { type AdapterReport, startTf } from "../src/tf/setup.ts";
import { ENHANCED_LAYERS, QUICK_LAYERS, runKernelSuite } from "./kernels_suite.ts";
import type { KernelMode } from "./work.ts";
import { type BenchDocument, hostInfo, SCHEMA, sourceRevision } from "./report.ts";
import { rooflineSizes, runRoofline } from "./roofline.ts";
import { cpuPeakFrom, jitVectorBits, readCpuSources } from "./cpu_peak.ts";
import { asConvLayer, runViewSuite, viewProblems } from "./conv_views.ts";
import { resolveClock, type TimingOptions } from "./timing.ts";
import type { AutotuneSetting } from "../src/ops/autotune/autotune.ts";
import type { ConvView } from "../src/ops/conv/tiling.ts";
import type { ConvGeometry } from "../src/ops/conv/geometry.ts";
import { planChoices } from "../src/ops/conv/tile_plan.ts";
import { benchTiles } from "./autotune_suite.ts";
import { architecture, type ModelName } from "../src/model/model.ts";
import { cachedTilePlan, convLayersOf } from "../src/train/autotune_model.ts";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { OptimizerKind } from "../src/train/optimizer.ts";

export const SUITES = ["kernels", "train", "roofline", "autotune", "all"] as const;
export type BenchSuite = typeof SUITES[number];

export interface BenchOptions {
  /** The command line, recorded in the document. */
  command: string;
  suite: BenchSuite;
  /** Batch sizes; null: per-suite defaults for the adapter. */
  batches: number[] | null;
  modes: KernelMode[];
  quick: boolean;
  /** Untimed and timed runs per case; undefined: defaults for the adapter. */
  warmup?: number;
  repeats?: number;
  /** Train suite: also time a real pass over this many training images (0 = no). */
  limit: number;
  dataDir?: string;
  /** Train suite: Adam as one fused kernel, or tf.train.adam. */
  optimizer: OptimizerKind;
  /** Kernels suite: compare with the CPU backend (webgpu only). */
  cpu: boolean;
  backend: "webgpu" | "cpu";
  adapter: "any" | "hardware";
  /** Autotune suite: models whose conv layers to tune. */
  models: ModelName[];
  /** Tile configs: cached choices (on), built-in defaults (off) or time again (refresh). */
  autotune: AutotuneSetting;
}

/** Adapter selection plus the start-up line every command prints. */
export async function startBackend(
  command: string,
  backend: "webgpu" | "cpu",
  policy: "any" | "hardware",
): Promise<AdapterReport> {
  const adapter = await startTf(command, backend, policy);
  // Tiny tensors would otherwise run on the CPU backend and escape the GPU clock.
  if (backend === "webgpu") tf.env().set("WEBGPU_CPU_FORWARD", false);
  return adapter;
}

/** Runs the selected suites; returns the whole result document. */
export async function runBench(o: BenchOptions): Promise<BenchDocument> {
  const suites = o.suite === "all" ? ["roofline", "kernels", "train"] : [o.suite];
  const batchFlag = o.batches;
  if (o.backend === "cpu" && o.suite === "autotune") {
    throw new UsageError("--suite autotune tunes WebGPU kernels: use --backend webgpu");
  }
  if (o.backend === "cpu" && suites.includes("roofline")) {
    if (o.suite === "roofline") {
      throw new UsageError("--suite roofline measures WebGPU kernels: use --backend webgpu");
    }
    suites.splice(suites.indexOf("roofline"), 1);
  }
  const adapter = await startBackend("bench", o.backend, o.adapter);
  // llvmpipe runs a 128-image backward pass in tens of seconds: fewer runs by default there.
  const slow = adapter.isSoftware;
  const timing: TimingOptions = {
    warmup: o.warmup ?? (o.quick || slow ? 1 : 2),
    repeats: o.repeats ?? (o.quick ? 1 : slow ? 3 : 5),
  };
  const log = (m: string) => console.log(m);
  const doc: BenchDocument = {
    schema: SCHEMA,
    date: new Date().toISOString(),
    command: o.command,
    revision: await sourceRevision(),
    adapter,
    clock: resolveClock(),
    host: hostInfo(),
    options: {
      suites,
      repeats: timing.repeats,
      warmup: timing.warmup,
      batches: batchFlag ?? [],
      quick: o.quick,
    },
    roofline: null,
    kernels: null,
    views: null,
    train: null,
    autotune: null,
    tileConfigs: {},
  };
  console.log(`bench: clock ${doc.clock}; suites ${suites.join(", ")}`);
  const bench = o.backend === "webgpu" ? await benchTiles(o.autotune, log) : null;
  const session = bench?.session;
  let tiles = bench?.tiles;
  /** The (view, geometry) problems the kernels and train suites ran, for doc.tileConfigs. */
  const ran: { view: ConvView; g: ConvGeometry }[] = [];

  if (suites.includes("autotune") && session) {
    log("autotune ...");
    const { runAutotuneSuite, EVAL_BATCH } = await import("./autotune_suite.ts");
    doc.autotune = await runAutotuneSuite({
      session,
      setting: o.autotune,
      models: o.models,
      batches: batchFlag ?? (o.quick ? [2] : slow ? [32, 64, 128] : [32, 64, 128, 256, 512]),
      inferBatch: o.quick ? null : EVAL_BATCH,
      quick: o.quick,
      timing: o.repeats || o.warmup !== undefined
        ? { warmup: timing.warmup, repeats: timing.repeats }
        : undefined,
      log,
    });
    if (o.autotune !== "off") tiles = cachedTilePlan(session); // what it tuned applies from here
  }

  if (suites.includes("roofline") || (suites.includes("kernels") && o.backend === "webgpu")) {
    log("roofline ...");
    doc.roofline = await runRoofline(rooflineSizes(o.quick), timing);
    doc.roofline.cpu = cpuPeakFrom(readCpuSources(), jitVectorBits(adapter.description));
  }
  if (suites.includes("kernels")) {
    log("kernels ...");
    const batches = batchFlag ?? (o.quick ? [2] : slow ? [32, 128] : [32, 128, 256]);
    doc.kernels = await runKernelSuite({
      layers: o.quick ? QUICK_LAYERS : ENHANCED_LAYERS,
      batches,
      modes: o.modes,
      timing,
      ceilings: doc.roofline
        ? {
          gflopPerS: doc.roofline.matmul.gflopPerS,
          gbPerS: doc.roofline.copy.gbPerS,
          // On a software adapter the kernels run on the host's cores: their FMA peak applies.
          cpuGflopPerS: adapter.isSoftware ? doc.roofline.cpu?.gflopPerS ?? null : null,
        }
        : null,
      cpu: o.cpu && o.backend === "webgpu",
      tiles,
      log,
    });
    const layers = o.quick ? QUICK_LAYERS : ENHANCED_LAYERS;
    ran.push(...batches.flatMap((b) => layers.flatMap((l) => viewProblems(asConvLayer(l), b))));
    if (o.backend === "webgpu") {
      log("kernels: conv views ...");
      doc.views = await runViewSuite({
        layers: o.quick ? QUICK_LAYERS : ENHANCED_LAYERS,
        batches,
        repeats: timing.repeats,
        cpuGflopPerS: adapter.isSoftware ? doc.roofline?.cpu?.gflopPerS ?? null : null,
        tiles,
        log,
      });
    }
  }
  if (suites.includes("train")) {
    log("train ...");
    const { runTrainSuite } = await import("./train_suite.ts");
    const batches = batchFlag ??
      (o.quick ? [4] : slow ? [32, 64] : [32, 64, 128, 256, 512]);
    doc.train = await runTrainSuite({
      batches,
      timing,
      limit: o.limit,
      dataDir: o.dataDir,
      optimizer: o.optimizer,
      tiles,
      log,
    });
    for (const m of ["enhanced", "baseline"] as const) {
      for (const { layer } of convLayersOf(architecture(m))) {
        ran.push(...batches.flatMap((b) => viewProblems(layer, b)));
      }
    }
  }
  doc.options.batches = batchFlag ?? [];
  if (tiles && ran.length > 0) {
    const backend = tf.backend() as unknown as WebGPUBackend;
    doc.tileConfigs = Object.fromEntries(
      [...planChoices(tiles, ran, backend)].sort(([a], [b]) => a.localeCompare(b)),
    );
  }
  return doc;
}
