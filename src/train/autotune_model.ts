// Autotuning for a model: the caller's architecture (src/model/model.ts) gives the conv and dense
// problems; they are tuned for the training batch (and the forward for the evaluation batch) and
// the result is a TilePlan the caller gives its model (model.tiles). `deno task train` calls
// `autotuneForTraining` before its loop;
// `bench --suite autotune` calls `convLayersOf` + `tuneConvProblems` for several models and
// batches.

import { architecture, type LayerSpec, type ModelName } from "../model/model.ts";
import * as tf from "@tensorflow/tfjs-core";
import {
  type AdapterKind,
  candidateConfigs,
  CONV_VIEWS,
  type ConvView,
} from "../ops/conv/tiling.ts";
import { backendAdapterKind, type TilePlan, tilePlan } from "../ops/conv/tile_plan.ts";
import {
  type AdapterIdentity,
  AutotuneCache,
  defaultCachePath,
  entryMatches,
  probeAdapterIdentity,
} from "../ops/autotune/autotune.ts";
import { type AutotuneSetting, autotuneSetting } from "../flags.ts";
import {
  cachedConvTable,
  type ConvLayer,
  convProblems,
  type ConvTuneRow,
  layerLabel,
  tuneConvProblems,
} from "../ops/autotune/autotune_conv.ts";
import {
  cachedDenseTable,
  denseProblems,
  type DenseTuneRow,
  tuneDenseProblems,
} from "../ops/autotune/autotune_dense.ts";

export interface DiscoveredLayer {
  layer: ConvLayer;
  /** The dispatch computes dx for this layer (false for the model-input layer). */
  needsDx: boolean;
  /** Views the dispatch asked a configuration for. */
  views: ConvView[];
}

/**
 * The conv layers of an architecture that run our ops (conv + BN + ReLU, conv + bias + ReLU with
 * or without the fused pool), in forward order, deduplicated by shape class and op. The first
 * conv reads the model input, which needs no gradient: the dispatch computes no dx there, so it
 * has no bwdData problem. autotune_test checks this list against the (view, shape) pairs a
 * profiled training step asks the tiling for.
 */
export function convLayersOf(specs: readonly LayerSpec[]): DiscoveredLayer[] {
  const out: DiscoveredLayer[] = [];
  const seen = new Set<string>();
  let first = true;
  for (const s of specs) {
    if (s.kind !== "conv-relu" && s.kind !== "conv-bn-relu") continue;
    const needsDx = !first;
    first = false;
    const layer: ConvLayer = {
      name: `conv${out.length + 1}`,
      op: s.kind === "conv-bn-relu" ? "bn-relu" : "bias-relu",
      h: s.shape.h,
      w: s.shape.w,
      cin: s.shape.cin,
      cout: s.shape.cout,
      kh: s.shape.k,
      kw: s.shape.k,
      stride: s.shape.stride,
      pad: s.shape.pad,
    };
    const label = `${layer.op} ${layerLabel(layer)}`;
    if (seen.has(label)) continue;
    seen.add(label);
    const views = CONV_VIEWS.filter((v) => needsDx || v !== "bwdData");
    out.push({ layer, needsDx, views });
  }
  return out;
}

/** Runs shorter than this many steps use cached choices only: timing would cost more. */
export const MIN_STEPS_TO_TUNE = 100;

export interface TrainTuneRequest {
  model: ModelName;
  ops: "fused" | "stock";
  backend: "webgpu" | "cpu";
  batch: number;
  /** Optimizer steps the run will take (the tuning must pay for itself). */
  steps: number;
  /** Inference batch of validation/evaluation, or null when the run evaluates nothing. */
  evalBatch: number | null;
  /** The --autotune flag; undefined: $FMNIST_AUTOTUNE, else on. */
  setting?: AutotuneSetting;
  log?: (line: string) => void;
}

/** The adapter, kind and cache a tuning session works with. */
export interface TuneSession {
  adapter: AdapterIdentity;
  kind: AdapterKind;
  cache: AutotuneCache;
}

/** Opens the cache of the current adapter (warning once if the file is unusable). */
export async function openTuneSession(
  warn: (line: string) => void = console.warn,
): Promise<TuneSession | null> {
  const adapter = await probeAdapterIdentity();
  if (!adapter) return null;
  const cache = await AutotuneCache.open(defaultCachePath(), warn);
  return { adapter, kind: backendAdapterKind(tf.backend()), cache };
}

/** This adapter's cached conv and dense choices as a plan. */
export function cachedTilePlan(session: TuneSession): TilePlan {
  const { cache, adapter, kind } = session;
  return tilePlan(kind, {
    conv: cachedConvTable(cache, adapter, kind),
    dense: cachedDenseTable(cache, adapter),
  });
}

export interface TrainTuneResult {
  /** The conv problems and their choices (empty when nothing was tuned or looked up). */
  rows: ConvTuneRow[];
  /** The plan for the model's ops; undefined where our ops do not run (cpu, --ops stock). */
  tiles: TilePlan | undefined;
}

/**
 * Before a training loop: tune the model's conv problems that the cache lacks (fast on a cache
 * hit). Returns the rows (empty when nothing applies: CPU backend, stock ops, a model without
 * fused layers, tuning off) and the plan to run the model under.
 */
export async function autotuneForTraining(req: TrainTuneRequest): Promise<TrainTuneResult> {
  const log = req.log ?? console.log;
  if (req.backend !== "webgpu" || req.ops !== "fused") return { rows: [], tiles: undefined };
  const setting = req.setting ?? autotuneSetting();
  const builtIn = () => tilePlan(backendAdapterKind(tf.backend()));
  if (setting === "off") {
    log(`autotune: off: built-in tile configs for ${builtIn().kind} adapters`);
    return { rows: [], tiles: builtIn() };
  }
  const session = await openTuneSession((l) => console.warn(l));
  if (!session) return { rows: [], tiles: builtIn() };
  const { cache, adapter, kind } = session;
  const where = cache.path ?? "memory only";
  if (req.steps < MIN_STEPS_TO_TUNE && setting !== "refresh") {
    const tiles = cachedTilePlan(session);
    const n = tiles.conv.size + tiles.dense.size;
    log(`autotune: short run (${req.steps} steps): ${n} cached choice(s) from ${where}, no timing`);
    return { rows: [], tiles };
  }
  const layers = convLayersOf(architecture(req.model));
  if (layers.length === 0) return { rows: [], tiles: cachedTilePlan(session) };
  const problems = convProblems(layers, req.batch, req.evalBatch);
  const missing = problems.filter((p) => {
    const e = cache.lookup(adapter, p.key);
    return setting === "refresh" || !e ||
      !entryMatches(e, candidateConfigs(p.view, kind).map((c) => c.id));
  });
  if (missing.length > 0) {
    log(
      `autotune: timing ${missing.length} of ${problems.length} conv problems on ` +
        `${adapter.description} (once per adapter; kept in ${where}; --autotune off skips) ...`,
    );
  }
  const t0 = performance.now();
  const rows = await tuneConvProblems(problems, { cache, adapter, kind, setting, log });
  const dense = await tuneDenseProblems(modelDenseProblems(req.model, req.batch), {
    cache,
    adapter,
    kind,
    setting,
    log,
  });
  const cached = rows.filter((r) => r.source === "cache").length;
  log(
    `autotune: ${rows.length} conv problems, ${cached} from the cache` +
      (missing.length
        ? `, ${missing.length} timed in ${((performance.now() - t0) / 1000).toFixed(1)} s`
        : "") +
      `: ${summarizeChoices(rows)}${summarizeDense(dense)}`,
  );
  return { rows, tiles: cachedTilePlan(session) };
}

/** The model's dense layers (our GEMM or tfjs's matMul: autotune_dense.ts) at `batch`. */
function modelDenseProblems(model: ModelName, batch: number) {
  return denseProblems(
    architecture(model).flatMap((l) =>
      l.kind === "dense"
        ? [{
          name: l.name,
          k: l.inF,
          c: l.outF,
          activation: l.relu ? "relu" as const : "linear" as const,
        }]
        : []
    ),
    batch,
  );
}

/** "; dense1 b128 gemm; logits b128 gemm", or "" without dense rows. */
function summarizeDense(rows: DenseTuneRow[]): string {
  return rows.map((r) => `; ${r.problem.name} b${r.problem.batch} ${r.choice}`).join("");
}

/** "fwd 28x28x1->32 k3 s1 same b128 fwd.r16c16v4; ..." in one line. */
export function summarizeChoices(rows: ConvTuneRow[]): string {
  return rows.map((r) =>
    `${r.problem.layer.name} ${r.problem.view} b${r.problem.batch} ${r.choice}`
  )
    .join("; ");
}
