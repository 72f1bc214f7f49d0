// Autotune suite (`deno task bench --suite autotune`): fills the autotune cache ahead of time for
// the models' conv layers at the benchmark/training batch sizes (and the evaluation batch), and
// reports the choice per (layer, view, batch bucket) with every candidate's time.

import { UsageError } from "../src/errors.ts";
import { architecture, MODEL_NAMES, type ModelName } from "../src/model/model.ts";
import type {
  AdapterIdentity,
  AutotuneSetting,
  TuneOptions,
} from "../src/ops/autotune/autotune.ts";
import {
  type ConvLayer,
  type ConvProblem,
  convProblems,
  layerLabel,
  tuneConvProblems,
} from "../src/ops/autotune/autotune_conv.ts";
import {
  cachedTilePlan,
  convLayersOf,
  openTuneSession,
  type TuneSession,
} from "../src/train/autotune_model.ts";
import { batchBucket } from "../src/ops/conv/tiling.ts";
import { type TilePlan, tilePlan } from "../src/ops/conv/tile_plan.ts";
import { DEFAULT_BATCH as EVAL_BATCH } from "../src/eval/inference.ts";

export { EVAL_BATCH };

export interface AutotuneRow {
  /** The models (and their layer names) whose layers have this problem. */
  layers: string[];
  /** "28x28x32->32 k3 s1 same". */
  shape: string;
  view: ConvProblem["view"];
  /** Batch timed; the choice holds for its bucket. */
  batch: number;
  bucket: number;
  work: ConvProblem["work"];
  key: string;
  choice: string;
  source: "cache" | "tuned" | "default";
  clock: string | null;
  /** Median ms per candidate id (null: failed). */
  timings: Record<string, number | null>;
  errors: Record<string, string>;
}

export interface AutotuneResult {
  adapter: AdapterIdentity;
  adapterKind: string;
  /** The cache file, or null when tuning lasted this run only. */
  cachePath: string | null;
  setting: AutotuneSetting;
  models: string[];
  batches: number[];
  inferBatch: number | null;
  seconds: number;
  rows: AutotuneRow[];
}

/** `--quick`: tiny layers (the kernels suite's), batch 2, no inference batch. */
const QUICK_CONV = { op: "bn-relu", kh: 3, kw: 3, stride: 1, pad: "same" } as const;
const QUICK: { layer: ConvLayer; needsDx: boolean }[] = [
  { layer: { ...QUICK_CONV, name: "quick1", h: 8, w: 8, cin: 1, cout: 4 }, needsDx: false },
  { layer: { ...QUICK_CONV, name: "quick2", h: 6, w: 6, cin: 4, cout: 8 }, needsDx: true },
];

export interface AutotuneSuiteOptions {
  session: TuneSession;
  setting: AutotuneSetting;
  models: ModelName[];
  batches: number[];
  inferBatch: number | null;
  quick: boolean;
  timing?: TuneOptions;
  log?: (line: string) => void;
}

export async function runAutotuneSuite(opts: AutotuneSuiteOptions): Promise<AutotuneResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const owners = new Map<string, string[]>();
  const problems: ConvProblem[] = [];
  const add = (model: string, layers: { layer: ConvLayer; needsDx: boolean }[]) => {
    const ps = [
      ...opts.batches.flatMap((b) => convProblems(layers, b)),
      ...(opts.inferBatch ? convProblems(layers, null, opts.inferBatch) : []),
    ];
    for (const p of ps) {
      const who = `${model} ${p.layer.name}`;
      const list = owners.get(p.key);
      if (list) {
        if (!list.includes(who)) list.push(who);
        continue;
      }
      owners.set(p.key, [who]);
      problems.push(p);
    }
  };
  if (opts.quick) {
    add("quick", QUICK);
  } else {
    for (const model of opts.models) {
      const layers = convLayersOf(architecture(model));
      if (layers.length === 0) {
        log(`  ${model}: no tiled conv layers to tune (stock ops, or the naive kernels)`);
      }
      add(model, layers);
    }
  }
  log(`  ${problems.length} problems (view x layer shape x batch bucket) ...`);
  const rows = await tuneConvProblems(problems, {
    ...opts.session,
    setting: opts.setting,
    timing: opts.timing,
    log: (l) => log(`  ${l}`),
  });
  return {
    adapter: opts.session.adapter,
    adapterKind: opts.session.kind,
    cachePath: opts.setting === "off" ? null : opts.session.cache.path,
    setting: opts.setting,
    models: opts.quick ? ["quick"] : opts.models,
    batches: opts.batches,
    inferBatch: opts.inferBatch,
    seconds: (performance.now() - t0) / 1000,
    rows: rows.map((r) => ({
      layers: owners.get(r.problem.key)!,
      shape: layerLabel(r.problem.layer),
      view: r.problem.view,
      batch: r.problem.batch,
      bucket: batchBucket(r.problem.batch),
      work: r.problem.work,
      key: r.problem.key,
      choice: r.choice,
      source: r.source,
      clock: r.clock,
      timings: r.timings,
      errors: r.errors,
    })),
  };
}

/** The tuning session of a benchmark run and the tile plan its suites run under. */
export interface BenchTiles {
  session: TuneSession;
  tiles: TilePlan;
}

/**
 * The tile plan benchmarks run with: the autotune cache's choices for this adapter (so kernel
 * and train figures are those a training run gets), or the built-in defaults with tuning off.
 * The JSON and the tables name the configuration of every layer.
 */
export async function benchTiles(
  setting: AutotuneSetting,
  log: (m: string) => void,
  command = "bench",
): Promise<BenchTiles | null> {
  const session = await openTuneSession((l) => console.warn(l));
  if (!session) return null;
  if (setting === "off") {
    log(`${command}: autotune off: built-in tile configs for ${session.kind} adapters`);
    return { session, tiles: tilePlan(session.kind) };
  }
  const tiles = cachedTilePlan(session);
  log(
    `${command}: ${tiles.conv.size} tuned tile config(s) for this adapter from ` +
      (session.cache.path ?? "memory"),
  );
  return { session, tiles };
}

/** `--models`: default the two the train suite runs; a one-line error naming the flag for an unknown model. */
export function parseModels(list: string[]): ModelName[] {
  if (list.length === 0) return ["enhanced", "baseline"];
  for (const m of list) {
    if (!(MODEL_NAMES as readonly string[]).includes(m)) {
      throw new UsageError(`--models must be a subset of ${MODEL_NAMES.join(",")}, got "${m}"`);
    }
  }
  return list as ModelName[];
}
