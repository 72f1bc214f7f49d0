// Autotuning of the tiled convolution (src/ops/conv/tiling.ts) on the current adapter: one
// problem per (view, layer shape class, batch bucket), timed with each candidate configuration
// pinned in turn (conv/tile_plan.ts), the fastest kept in the autotune cache
// (src/ops/autotune/autotune.ts); cachedConvTable turns the cache into the conv table of the
// TilePlan that the caller passes to its ops.
//
// What is timed per problem, with the candidate pinned for its view (tfjs kernel counted):
//   fwd, conv+BN+ReLU     convBnReluTrain: conv + batch statistics + apply   ConvBnReluTrain
//   fwd, inference batch  convBnReluInfer: conv with the folded-BN epilogue  ConvBnReluInfer
//   fwd, conv+bias+ReLU   convBiasRelu (training and inference alike)        ConvBiasRelu
//   bwdFilter, BN layer   tf.grads of convBnReluTrain w.r.t. filter, gamma,  ConvBnReluTrainParamGrads
//                         beta (dz, dfilter, dgamma, dbeta; no dx)
//   bwdFilter, bias layer convBackpropFilter(dz, x)                          ConvBackpropFilter
//   bwdData               convBackpropData(dz, filter): dx                   ConvBackpropData
// Two layers of one shape class share a key (conv_tiling.shapeKey has no epilogue), so the
// first layer listed decides how the problem is timed.
// With timestamp-query the figure is the GPU time of that tfjs kernel alone (tf.profile), so the
// forward that tf.grads runs first is left out; without it, host time to the read-back of the
// whole work, which still ranks the candidates (everything else is the same for all of them).

import * as tf from "@tensorflow/tfjs-core";
import {
  CONV_BN_RELU_INFER,
  CONV_BN_RELU_TRAIN,
  convBnReluInfer,
  convBnReluTrain,
} from "../conv_bn_relu/conv_bn_relu.ts";
import { CONV_BN_RELU_TRAIN_PARAM_GRADS } from "../conv_bn_relu/conv_bn_relu.ts";
import {
  CONV_BACKPROP_DATA,
  CONV_BACKPROP_FILTER,
  convBackpropData,
  convBackpropFilter,
} from "../conv_backprop/conv_backprop.ts";
import { CONV_BIAS_RELU, convBiasRelu } from "../conv_bias_relu/conv_bias_relu.ts";
import { type ConvGeometry, convGeometry } from "../conv/geometry.ts";
import { winogradApplies } from "../conv/winograd_geometry.ts";
import { winogradServes } from "../conv/winograd.ts";
import {
  type AdapterKind,
  batchBucket,
  candidateConfigs,
  CONV_VIEWS,
  type ConvView,
  defaultConfig,
  shapeKey,
  type TileConfig,
} from "../conv/tiling.ts";
import { pinTileConfig, type TilePlan, tilePlan } from "../conv/tile_plan.ts";
import {
  type AdapterIdentity,
  type AutotuneCache,
  type AutotuneSetting,
  entryMatches,
  type TuneOptions,
  tuneProblem,
} from "./autotune.ts";

/** A conv layer of one of our ops, without the batch (the model discovery or the bench fills these). */
export interface ConvLayer {
  /** Human-readable name: "conv2". */
  name: string;
  /** conv + batch norm + ReLU (enhanced, wide) or conv + bias + ReLU (baseline). */
  op: "bn-relu" | "bias-relu";
  h: number;
  w: number;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  stride: number;
  pad: "same" | "valid";
}

/** How a problem is timed (see the header). */
export type ProblemWork =
  | "train-fwd"
  | "infer"
  | "bias-fwd"
  | "bwd-filter"
  | "bwd-filter-plain"
  | "bwd-data";

export interface ConvProblem {
  view: ConvView;
  layer: ConvLayer;
  /** The batch timed (a tuning holds for its whole batch bucket). */
  batch: number;
  work: ProblemWork;
  /** The dispatch's key (conv_tiling.shapeKey): also the cache's problem key. */
  key: string;
}

export function layerGeometry(l: ConvLayer, batch: number): ConvGeometry {
  return convGeometry([batch, l.h, l.w, l.cin], [l.kh, l.kw, l.cin, l.cout], l.stride, l.pad);
}

/** "28x28x32->32 k3 s1 same". */
export function layerLabel(l: ConvLayer): string {
  const k = l.kh === l.kw ? `${l.kh}` : `${l.kh}x${l.kw}`;
  return `${l.h}x${l.w}x${l.cin}->${l.cout} k${k} s${l.stride} ${l.pad}`;
}

/**
 * The problems of training `layers` at `batch` (views fwd, bwdFilter and, where `needsDx`,
 * bwdData) and, with `inferBatch`, of inference at that batch. Deduplicated by key: two layers
 * of one shape class share a tuning, and the first work named for a key is the one timed.
 */
export function convProblems(
  layers: { layer: ConvLayer; needsDx: boolean }[],
  batch: number | null,
  inferBatch: number | null = null,
): ConvProblem[] {
  const out: ConvProblem[] = [];
  const seen = new Set<string>();
  const add = (view: ConvView, layer: ConvLayer, b: number, work: ProblemWork) => {
    const key = shapeKey(view, layerGeometry(layer, b));
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ view, layer, batch: b, work, key });
  };
  for (const { layer, needsDx } of layers) {
    const bn = layer.op === "bn-relu";
    if (batch !== null) {
      add("fwd", layer, batch, bn ? "train-fwd" : "bias-fwd");
      add("bwdFilter", layer, batch, bn ? "bwd-filter" : "bwd-filter-plain");
      if (needsDx) add("bwdData", layer, batch, "bwd-data");
    }
    if (inferBatch !== null) add("fwd", layer, inferBatch, bn ? "infer" : "bias-fwd");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Timing one candidate

/** The device's largest storage binding (Winograd's transformed buffers must fit one). */
function maxBindingBytes(): number {
  const b = tf.backend() as unknown as {
    device?: { limits: { maxStorageBufferBindingSize: number } };
  };
  return b.device?.limits.maxStorageBufferBindingSize ?? 0;
}

/** True when the active backend times programs with timestamp queries. */
export function timestampsAvailable(): boolean {
  if (tf.getBackend() !== "webgpu") return false;
  return (tf.backend() as unknown as { supportTimestampQuery?: boolean }).supportTimestampQuery ===
    true;
}

export type TuneClock = "gpu-timestamp" | "host-sync";

export interface ProblemInputs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  dy: tf.Tensor4D;
}

export function makeInputs(p: ConvProblem): ProblemInputs {
  const l = p.layer;
  const g = layerGeometry(l, p.batch);
  return tf.tidy(() => ({
    x: tf.randomNormal([p.batch, l.h, l.w, l.cin], 0, 1, "float32", 21) as tf.Tensor4D,
    filter: tf.randomNormal(
      [l.kh, l.kw, l.cin, l.cout],
      0,
      Math.sqrt(2 / (l.kh * l.kw * l.cin)),
      "float32",
      22,
    ) as tf.Tensor4D,
    gamma: tf.randomUniform([l.cout], 0.5, 1.5, "float32", 23) as tf.Tensor1D,
    beta: tf.randomUniform([l.cout], -0.5, 0.5, "float32", 24) as tf.Tensor1D,
    mean: tf.randomUniform([l.cout], -0.2, 0.2, "float32", 25) as tf.Tensor1D,
    variance: tf.randomUniform([l.cout], 0.5, 2, "float32", 26) as tf.Tensor1D,
    dy: tf.randomNormal([p.batch, g.outH, g.outW, l.cout], 0, 1, "float32", 27) as tf.Tensor4D,
  }));
}

/** The work of a problem under a tile plan, and the tfjs kernel whose GPU time counts. */
export function problemWork(
  p: ConvProblem,
  t: ProblemInputs,
): [(tiles: TilePlan) => tf.Tensor[], string] {
  const T4 = (a: tf.Tensor) => a as tf.Tensor4D;
  const T1 = (a: tf.Tensor) => a as tf.Tensor1D;
  const strides: [number, number] = [p.layer.stride, p.layer.stride];
  const pad = p.layer.pad;
  switch (p.work) {
    case "train-fwd":
      return [(tiles) => {
        const attrs = { strides, pad, tiles };
        const r = convBnReluTrain(t.x, t.filter, t.gamma, t.beta, attrs);
        return [r.y, r.mean, r.variance];
      }, CONV_BN_RELU_TRAIN];
    case "infer":
      return [
        (tiles) => [
          convBnReluInfer(t.x, t.filter, t.gamma, t.beta, t.mean, t.variance, {
            strides,
            pad,
            tiles,
          }),
        ],
        CONV_BN_RELU_INFER,
      ];
    case "bias-fwd":
      return [
        (tiles) => [convBiasRelu(t.x, t.filter, t.beta, { strides, pad, tiles })],
        CONV_BIAS_RELU,
      ];
    case "bwd-filter-plain":
      return [
        (tiles) => [convBackpropFilter(t.dy, t.x, t.filter.shape, { strides, pad, tiles })],
        CONV_BACKPROP_FILTER,
      ];
    case "bwd-filter":
      return [
        (tiles) =>
          tf.grads((f, g, b) =>
            convBnReluTrain(t.x, T4(f), T1(g), T1(b), { strides, pad, tiles }).y
          )(
            [t.filter, t.gamma, t.beta],
            t.dy,
          ),
        CONV_BN_RELU_TRAIN_PARAM_GRADS,
      ];
    case "bwd-data":
      return [
        (tiles) => [convBackpropData(t.dy, t.filter, t.x.shape, { strides, pad, tiles })],
        CONV_BACKPROP_DATA,
      ];
  }
}

/** Runs `work` once under `tiles`; returns ms on `clock` (see the header). */
export async function timeOnce(
  work: (tiles: TilePlan) => tf.Tensor[],
  kernel: string,
  tiles: TilePlan,
  clock: TuneClock,
): Promise<number> {
  const forced = () => work(tiles);
  if (clock === "gpu-timestamp") {
    const info = await tf.profile(forced);
    const out = info.result as tf.Tensor[];
    await Promise.all(out.map((o) => o.data()));
    tf.dispose(out);
    let ms = 0;
    let found = false;
    for (const k of info.kernels) {
      if (k.name !== kernel) continue;
      const t = await (k.kernelTimeMs as number | Promise<number | { error: string }>);
      if (typeof t !== "number") throw new Error(`no GPU time for ${kernel}`);
      ms += t;
      found = true;
    }
    if (!found) throw new Error(`kernel ${kernel} did not run`);
    return ms;
  }
  const start = performance.now();
  const out = forced();
  await Promise.all(out.map((o) => o.data()));
  const ms = performance.now() - start;
  tf.dispose(out);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// Tuning and the dispatch's lookup

export interface ConvTuneRow {
  problem: ConvProblem;
  /** Id of the configuration the dispatch will use. */
  choice: string;
  /** cache: an earlier run's choice; tuned: timed now; default: tuning off. */
  source: "cache" | "tuned" | "default";
  /** Median ms per candidate (null: failed), from the cache or from this run; {} for default. */
  timings: Record<string, number | null>;
  clock: string | null;
  /** Candidate id -> first line of its error, for candidates that failed. */
  errors: Record<string, string>;
}

export interface ConvTuneOptions {
  cache: AutotuneCache;
  adapter: AdapterIdentity;
  kind: AdapterKind;
  setting: AutotuneSetting;
  timing?: TuneOptions;
  log?: (line: string) => void;
}

/** Warm-up and repeats per candidate: fewer on a software adapter, where a run takes 0.1-1 s. */
export function defaultTuneTiming(kind: AdapterKind): TuneOptions {
  return kind === "software" ? { warmup: 1, repeats: 3 } : { warmup: 2, repeats: 7 };
}

/**
 * Tunes every problem (the cache answers where it can). Each candidate is timed under this
 * adapter's cached choices, updated problem by problem (so later problems, the backward of a
 * layer say, are timed with the forward's choice in place), with the candidate pinned. The cache
 * is saved after each timed problem; with setting "off" nothing is timed or read and every
 * problem gets the default.
 */
export async function tuneConvProblems(
  problems: ConvProblem[],
  opts: ConvTuneOptions,
): Promise<ConvTuneRow[]> {
  const log = opts.log ?? (() => {});
  if (opts.setting === "off") {
    return problems.map((p) => ({
      problem: p,
      choice: defaultConfig(p.view, opts.kind, layerGeometry(p.layer, p.batch)).id,
      source: "default",
      timings: {},
      clock: null,
      errors: {},
    }));
  }
  let plan = tilePlan(opts.kind, { conv: cachedConvTable(opts.cache, opts.adapter, opts.kind) });
  const clock: TuneClock = timestampsAvailable() ? "gpu-timestamp" : "host-sync";
  const timing = opts.timing ?? defaultTuneTiming(opts.kind);
  const rows: ConvTuneRow[] = [];
  try {
    for (const p of problems) {
      const candidates = defaultFirst(p, opts.kind);
      const inputs = makeInputs(p);
      const errors: Record<string, string> = {};
      try {
        const [work, kernel] = problemWork(p, inputs);
        const r = await tuneProblem({
          cache: opts.cache,
          adapter: opts.adapter,
          problem: p.key,
          candidates,
          idOf: (c) => c.id,
          timeOnce: async (c) => {
            try {
              // Recorded as failed (null) without running: the dispatch would run the direct
              // default in its place, timing it twice under two names.
              const g = layerGeometry(p.layer, p.batch);
              if (c.winograd && !winogradApplies(g)) {
                throw new Error("Winograd F(2x2,3x3) serves 3x3 stride-1 convolutions only");
              }
              if (c.winograd && !winogradServes(p.view, g, maxBindingBytes())) {
                throw new Error(
                  "Winograd F(2x2,3x3): a transformed buffer exceeds the binding limit",
                );
              }
              return await timeOnce(work, kernel, pinTileConfig(plan, c), clock);
            } catch (e) {
              errors[c.id] ??= (e as Error).message.split("\n")[0];
              throw e;
            }
          },
          options: timing,
          clock,
          refresh: opts.setting === "refresh",
        });
        if (!r.fromCache) {
          log(`autotune: ${p.key} -> ${r.choice.id} (${describeTimings(r.entry.timings)})`);
          const conv = cachedConvTable(opts.cache, opts.adapter, opts.kind);
          plan = tilePlan(opts.kind, { conv });
          await opts.cache.save(log); // per problem: an interrupted run keeps what it measured
        }
        rows.push({
          problem: p,
          choice: r.choice.id,
          source: r.fromCache ? "cache" : "tuned",
          timings: r.entry.timings,
          clock: r.entry.clock,
          errors,
        });
      } finally {
        tf.dispose(Object.values(inputs));
      }
    }
  } finally {
    await opts.cache.save(log);
  }
  return rows;
}

/** The view's candidates with the dispatch's default for this shape first (ties go to it). */
function defaultFirst(p: ConvProblem, kind: AdapterKind): TileConfig[] {
  const list = candidateConfigs(p.view, kind);
  const d = defaultConfig(p.view, kind, layerGeometry(p.layer, p.batch));
  return [d, ...list.filter((c) => c.id !== d.id)];
}

function describeTimings(t: Record<string, number | null>): string {
  return Object.entries(t).map(([id, ms]) => `${id} ${ms === null ? "failed" : ms.toFixed(2)}`)
    .join(", ");
}

/**
 * This adapter's cached conv choices as a TilePlan's conv table (every entry, not only this
 * run's problems, so an evaluation at another batch bucket benefits from an earlier tuning).
 * Entries tuned over another candidate list are skipped: the dispatch then uses the default.
 */
export function cachedConvTable(
  cache: AutotuneCache,
  adapter: AdapterIdentity,
  kind: AdapterKind,
): Map<string, TileConfig> {
  const table = new Map<string, TileConfig>();
  for (const [key, entry] of Object.entries(cache.entries(adapter))) {
    const view = CONV_VIEWS.find((v) => key.startsWith(`${v}:`));
    if (!view) continue; // not a conv problem key of this build
    const candidates = candidateConfigs(view, kind);
    if (!entryMatches(entry, candidates.map((c) => c.id))) continue;
    table.set(key, candidates.find((c) => c.id === entry.choice)!);
  }
  return table;
}

/** The batch bucket a problem's tuning holds for (conv_tiling.batchBucket). */
export function problemBucket(p: ConvProblem): number {
  return batchBucket(p.batch);
}
