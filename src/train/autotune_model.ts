// Autotuning for a model: find the conv layers a training step dispatches, tune them for the
// training batch (and the forward for the evaluation batch), and leave the resolver installed.
// `deno task train` calls `autotuneForTraining` before its loop (it also tunes the dense layers'
// implementation, autotune_dense.ts); `bench --suite autotune` calls
// `discoverConvLayers` + `tuneConvProblems` for several models and batches.
//
// The layers are found by running one training step of a throwaway copy of the model at batch 2
// under tf.profile (which records every kernel's input and output shapes) with a resolver that
// records which (view, shape key) the dispatch asks for. So the problem list follows the model
// and the dispatch as they are (e.g. no bwdData problem where the dispatch computes no dx) and
// needs no table of layer shapes kept in step with src/model/model.ts.

import * as tf from "@tensorflow/tfjs-core";
import { architecture, createModel, type ModelName } from "../model/model.ts";
import { makeTrainStep } from "./step.ts";
import { CONV_BN_RELU_TRAIN } from "../ops/conv_bn_relu/conv_bn_relu.ts";
import { CONV_BIAS_RELU } from "../ops/conv_bias_relu/conv_bias_relu.ts";
import { CONV_BIAS_RELU_POOL2 } from "../ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import {
  type AdapterKind,
  candidateConfigs,
  CONV_VIEWS,
  type ConvView,
  currentAdapterKind,
  setTileConfigResolver,
  shapeKey,
} from "../ops/conv/tiling.ts";
import {
  type AdapterIdentity,
  AutotuneCache,
  defaultCachePath,
  entryMatches,
  probeAdapterIdentity,
} from "../ops/autotune/autotune.ts";
import { type AutotuneSetting, autotuneSetting } from "../flags.ts";
import {
  type ConvLayer,
  convProblems,
  type ConvTuneRow,
  installCachedResolver,
  layerGeometry,
  layerLabel,
  tuneConvProblems,
} from "../ops/autotune/autotune_conv.ts";
import {
  denseProblems,
  type DenseTuneRow,
  installCachedDenseResolver,
  tuneDenseProblems,
} from "../ops/autotune/autotune_dense.ts";
import { setDenseImplResolver } from "../ops/dense_bias_act/dense_bias_act.ts";

export interface DiscoveredLayer {
  layer: ConvLayer;
  /** The dispatch computes dx for this layer (false for the model-input layer). */
  needsDx: boolean;
  /** Views the dispatch asked a configuration for. */
  views: ConvView[];
}

/** Stride and padding that map an input extent to an output extent (tfjs's conventions). */
function stridePad(
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  outH: number,
  outW: number,
): { stride: number; pad: "same" | "valid" } | null {
  for (const stride of [1, 2, 3, 4]) {
    for (const pad of ["same", "valid"] as const) {
      const out = (n: number, k: number) =>
        pad === "same" ? Math.ceil(n / stride) : Math.ceil((n - k + 1) / stride);
      if (out(inH, kh) === outH && out(inW, kw) === outW) return { stride, pad };
    }
  }
  return null;
}

/**
 * The conv layers of `model` that run our ops (conv + BN + ReLU, conv + bias + ReLU), in
 * forward order, deduplicated by shape class and op. Leaves no
 * resolver installed (the recording one is removed): callers install theirs after.
 */
export async function discoverConvLayers(model: ModelName): Promise<DiscoveredLayer[]> {
  const m = createModel(model, { ops: "fused", seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const step = makeTrainStep(m, optimizer);
  const batch = 2;
  const [x, y] = tf.tidy(() => [
    tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D,
    tf.cast(tf.oneHot(tf.tensor1d([1, 2], "int32"), 10), "float32") as tf.Tensor2D,
  ]);
  const asked = new Set<string>();
  setTileConfigResolver((view, key) => {
    asked.add(`${view}|${key}`);
    return undefined;
  });
  let kernels;
  try {
    const info = await tf.profile(() => step(x, y));
    await (info.result as tf.Tensor).data();
    (info.result as tf.Tensor).dispose();
    kernels = info.kernels;
  } finally {
    setTileConfigResolver(undefined);
    tf.dispose([x, y]);
    optimizer.dispose();
    m.dispose();
  }
  const out: DiscoveredLayer[] = [];
  const seen = new Set<string>();
  for (const k of kernels) {
    const op = k.name === CONV_BN_RELU_TRAIN
      ? "bn-relu"
      : k.name === CONV_BIAS_RELU || k.name === CONV_BIAS_RELU_POOL2
      ? "bias-relu"
      : null;
    if (!op) continue;
    const [xs, fs] = k.inputShapes;
    // The conv's output: ConvBiasReluPool2's second output (its first is the pooled tensor).
    const ys = k.outputShapes[k.name === CONV_BIAS_RELU_POOL2 ? 1 : 0];
    const sp = stridePad(xs[1], xs[2], fs[0], fs[1], ys[1], ys[2]);
    if (!sp) continue;
    const layer: ConvLayer = {
      name: `conv${out.length + 1}`,
      op,
      h: xs[1],
      w: xs[2],
      cin: xs[3],
      cout: fs[3],
      kh: fs[0],
      kw: fs[1],
      ...sp,
    };
    const label = `${op} ${layerLabel(layer)}`;
    if (seen.has(label)) continue;
    seen.add(label);
    const g = layerGeometry(layer, batch);
    const views = CONV_VIEWS.filter((v) => asked.has(`${v}|${shapeKey(v, g)}`));
    if (views.length === 0) continue; // the dispatch does not consult the tiling (naive kernels)
    out.push({ layer, needsDx: views.includes("bwdData"), views });
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
  return { adapter, kind: currentAdapterKind(), cache };
}

/**
 * Before a training loop: tune the model's conv problems that the cache lacks (fast on a cache
 * hit) and install the resolver. Returns the rows (empty when nothing applies: CPU backend,
 * stock ops, a model without fused layers, tuning off).
 */
export async function autotuneForTraining(req: TrainTuneRequest): Promise<ConvTuneRow[]> {
  const log = req.log ?? console.log;
  if (req.backend !== "webgpu" || req.ops !== "fused") return [];
  const setting = req.setting ?? autotuneSetting();
  if (setting === "off") {
    setTileConfigResolver(undefined);
    setDenseImplResolver(undefined);
    log(`autotune: off: built-in tile configs for ${currentAdapterKind()} adapters`);
    return [];
  }
  const session = await openTuneSession((l) => console.warn(l));
  if (!session) return [];
  const { cache, adapter, kind } = session;
  const where = cache.path ?? "memory only";
  if (req.steps < MIN_STEPS_TO_TUNE && setting !== "refresh") {
    const n = installCachedResolver(cache, adapter, kind) +
      installCachedDenseResolver(cache, adapter);
    log(`autotune: short run (${req.steps} steps): ${n} cached choice(s) from ${where}, no timing`);
    return [];
  }
  const layers = await discoverConvLayers(req.model);
  if (layers.length === 0) {
    installCachedResolver(cache, adapter, kind); // discovery removed it
    return [];
  }
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
  return rows;
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
