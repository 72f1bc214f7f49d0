// Autotuning of the dense layers' implementation (src/ops/dense_bias_act/dense_bias_act.ts): per (K, C,
// activation, batch bucket), time a fused-ops dense layer's forward + its three gradients (tf.grads
// w.r.t. x, kernel, bias) with our GEMM and with tfjs's fused matMul, keep the faster in the
// autotune cache (src/ops/autotune/autotune.ts, problem keys `dense:...`); cachedDenseTable turns
// the cache into the dense table of the TilePlan that denseUsesGemm consults. The candidates are timed host-sync (wall time to the read-back of
// every output): the two run different kernel sets, so no single kernel's GPU time compares them,
// and the host cost of their dispatches is part of what differs on a GPU.

import * as tf from "@tensorflow/tfjs-core";
import {
  defaultDenseImpl,
  DENSE_IMPLS,
  type DenseActivation,
  type DenseImpl,
  denseLayer,
  denseProblemKey,
} from "../dense_bias_act/dense_bias_act.ts";
import type { AdapterKind } from "../conv/tiling.ts";
import {
  type AdapterIdentity,
  type AutotuneCache,
  type AutotuneSetting,
  entryMatches,
  type TuneOptions,
  tuneProblem,
} from "./autotune.ts";
import { withFlags } from "../../flags.ts";

/** One dense layer of a model, at one batch. */
export interface DenseProblem {
  /** "dense1". */
  name: string;
  k: number;
  c: number;
  activation: DenseActivation;
  batch: number;
  /** denseProblemKey: also the cache's problem key. */
  key: string;
}

/** The problems of `layers` at `batch`, deduplicated by key (first name kept). */
export function denseProblems(
  layers: { name: string; k: number; c: number; activation: DenseActivation }[],
  batch: number,
): DenseProblem[] {
  const seen = new Set<string>();
  return layers.flatMap((l) => {
    const key = denseProblemKey(batch, l.k, l.c, l.activation);
    if (seen.has(key)) return [];
    seen.add(key);
    return [{ ...l, batch, key }];
  });
}

export interface DenseTuneRow {
  problem: DenseProblem;
  choice: DenseImpl;
  source: "cache" | "tuned";
  timings: Record<string, number | null>;
}

/** Runs `f` with FMNIST_DENSE forced to `impl`; restores the flag. */
function withImpl<T>(impl: DenseImpl, f: () => T): T {
  return withFlags({ FMNIST_DENSE: impl }, f);
}

/** Host ms of one forward + gradients of `p` with `impl`. */
async function timeOnce(p: DenseProblem, impl: DenseImpl, t: tf.Tensor[]): Promise<number> {
  const [x, w, b, dy] = t as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.Tensor2D];
  const start = performance.now();
  const out = withImpl(impl, () => {
    const f = (a: tf.Tensor, k: tf.Tensor, bb: tf.Tensor) =>
      denseLayer(a as tf.Tensor2D, k as tf.Tensor2D, bb as tf.Tensor1D, p.activation);
    return tf.grads(f)([x, w, b], dy);
  });
  await Promise.all(out.map((o) => o.data()));
  const ms = performance.now() - start;
  tf.dispose(out);
  return ms;
}

/**
 * Tunes every problem the cache cannot answer (setting "refresh": all of them); "off" times
 * nothing (the rule applies).
 */
export async function tuneDenseProblems(problems: DenseProblem[], opts: {
  cache: AutotuneCache;
  adapter: AdapterIdentity;
  kind: AdapterKind;
  setting: AutotuneSetting;
  timing?: TuneOptions;
  log?: (line: string) => void;
}): Promise<DenseTuneRow[]> {
  const log = opts.log ?? (() => {});
  if (opts.setting === "off") return [];
  const first = defaultDenseImpl(opts.kind);
  const candidates = [first, ...DENSE_IMPLS.filter((i) => i !== first)];
  const timing = opts.timing ?? { warmup: 1, repeats: 3 };
  const rows: DenseTuneRow[] = [];
  try {
    for (const p of problems) {
      const t = tf.tidy(() => [
        tf.randomNormal([p.batch, p.k], 0, 1, "float32", 31),
        tf.randomNormal([p.k, p.c], 0, Math.sqrt(2 / p.k), "float32", 32),
        tf.zeros([p.c]),
        tf.randomNormal([p.batch, p.c], 0, 1, "float32", 33),
      ]);
      try {
        const r = await tuneProblem({
          cache: opts.cache,
          adapter: opts.adapter,
          problem: p.key,
          candidates,
          idOf: (c) => c,
          timeOnce: (impl) => timeOnce(p, impl, t),
          options: timing,
          clock: "host-sync",
          refresh: opts.setting === "refresh",
        });
        if (!r.fromCache) {
          const times = Object.entries(r.entry.timings)
            .map(([id, ms]) => `${id} ${ms === null ? "failed" : ms.toFixed(2)}`).join(", ");
          log(`autotune: ${p.key} -> ${r.choice} (${times})`);
        }
        rows.push({
          problem: p,
          choice: r.choice,
          source: r.fromCache ? "cache" : "tuned",
          timings: r.entry.timings,
        });
      } finally {
        tf.dispose(t);
      }
    }
  } finally {
    await opts.cache.save(log);
  }
  return rows;
}

/** This adapter's cached dense choices, as a TilePlan's dense table. */
export function cachedDenseTable(
  cache: AutotuneCache,
  adapter: AdapterIdentity,
): Map<string, DenseImpl> {
  const table = new Map<string, DenseImpl>();
  for (const [key, entry] of Object.entries(cache.entries(adapter))) {
    if (!key.startsWith("dense:") || !entryMatches(entry, DENSE_IMPLS)) continue;
    table.set(key, entry.choice as DenseImpl);
  }
  return table;
}
