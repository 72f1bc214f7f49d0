// Timing helpers for the benchmark suites and the probes (bench/probes/): warm-up, repeated runs
// (round-robin across the rows of an A/B), median and spread.
//
// Two clocks. "gpu-timestamp": the sum of per-program GPU durations from timestamp queries
// (`tf.time(f).kernelMs`; tfjs-webgpu wraps every program it dispatches, ours included, in a
// compute pass with timestampWrites). "host-sync": wall time from the call to the moment the
// results are read back (`await t.data()`), which waits for the queue. On llvmpipe both clocks
// are CPU time; on a real GPU the host clock also counts dispatch overhead and the readback.

import * as tf from "@tensorflow/tfjs-core";
import { median, quantile } from "../src/stats.ts";

export type Clock = "gpu-timestamp" | "host-sync";

export interface TimingOptions {
  warmup: number;
  repeats: number;
  /** Preferred clock; "gpu-timestamp" falls back to "host-sync" when unavailable. */
  clock?: Clock;
}

export interface Stats {
  /** Median of the samples, ms. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Interquartile range (q3 - q1), ms. 0 with fewer than 4 samples. */
  iqrMs: number;
  /** Raw samples in run order, ms. */
  samples: number[];
  clock: Clock;
  /** Median host wall time (call to read-back), ms: present whatever the clock. */
  hostMedianMs: number;
}

/** Work returning the tensors to wait on; they are disposed by the timer. */
export type Work = () => tf.TensorContainer;

/** True when the active backend can time GPU programs with timestamp queries. */
export function gpuTimestampsAvailable(): boolean {
  if (tf.getBackend() !== "webgpu") return false;
  const backend = tf.backend() as unknown as { supportTimestampQuery?: boolean };
  return backend.supportTimestampQuery === true;
}

/** The clock that `measure` will use for `preferred` on the active backend. */
export function resolveClock(preferred: Clock = "gpu-timestamp"): Clock {
  return preferred === "gpu-timestamp" && gpuTimestampsAvailable() ? "gpu-timestamp" : "host-sync";
}

/** One call of `work`: GPU ms (tf.time's kernelMs; null without timestamp queries) and host ms. */
export interface Sample {
  gpuMs: number | null;
  /** Wall time from the call to the read-back of every result. */
  hostMs: number;
}

/**
 * Runs `work` once, reads back and disposes its results; with `gpu`, inside tf.time (which
 * resolves after its timestamp queries are read back, i.e. after the queue drained).
 */
export async function sample(work: Work, gpu = gpuTimestampsAvailable()): Promise<Sample> {
  let out: tf.TensorContainer = [];
  const start = performance.now();
  let gpuMs: number | null = null;
  if (gpu) {
    const info = await tf.time(() => {
      out = work();
    });
    gpuMs = typeof info.kernelMs === "number" ? info.kernelMs : null;
  } else {
    out = work();
  }
  await syncAll(out);
  const hostMs = performance.now() - start;
  tf.dispose(out);
  return { gpuMs, hostMs };
}

/**
 * Probe timing: `warmup` untimed rounds (shader compiles, buffer pools), then `repeats` rounds
 * that each call every row once, round-robin, so load from other processes on a shared machine
 * hits all rows alike. Returns each row's samples in round order.
 */
export async function roundRobin(
  rows: readonly Work[],
  opts: { warmup: number; repeats: number; gpu?: boolean },
): Promise<Sample[][]> {
  const out: Sample[][] = rows.map(() => []);
  for (let round = -opts.warmup; round < opts.repeats; round++) {
    for (let i = 0; i < rows.length; i++) {
      const s = await sample(rows[i], opts.gpu);
      if (round >= 0) out[i].push(s);
    }
  }
  return out;
}

/** Median GPU ms of `samples` (null when the adapter has no timestamp queries). */
export function medianGpuMs(samples: readonly Sample[]): number | null {
  const gpu = samples.map((s) => s.gpuMs);
  return gpu.every((ms) => ms !== null) ? median(gpu as number[]) : null;
}

/** Median host ms of `samples`. */
export function medianHostMs(samples: readonly Sample[]): number {
  return median(samples.map((s) => s.hostMs));
}

/** Awaits every tensor in `out` (reading them back forces the queue to finish). */
async function syncAll(out: tf.TensorContainer): Promise<void> {
  const tensors: tf.Tensor[] = [];
  collect(out, tensors);
  // Reading one element would do on a real GPU, but reading all keeps both clocks honest.
  await Promise.all(tensors.map((t) => t.data()));
}

function collect(c: tf.TensorContainer, acc: tf.Tensor[]) {
  if (c instanceof tf.Tensor) acc.push(c);
  else if (Array.isArray(c)) c.forEach((x) => collect(x, acc));
  else if (c !== null && typeof c === "object") {
    Object.values(c as Record<string, tf.TensorContainer>).forEach((x) => collect(x, acc));
  }
}

/** Warm-up runs (compiles shaders, fills buffer pools), then `repeats` timed runs. */
export async function measure(work: Work, opts: TimingOptions): Promise<Stats> {
  const clock = resolveClock(opts.clock);
  for (let i = 0; i < opts.warmup; i++) await sample(work, false);
  const samples: number[] = [];
  const host: number[] = [];
  for (let i = 0; i < Math.max(1, opts.repeats); i++) {
    const s = await sample(work, clock === "gpu-timestamp");
    if (clock === "gpu-timestamp" && s.gpuMs === null) {
      throw new Error("measure: tf.time gave no kernelMs although timestamp queries are on");
    }
    samples.push(s.gpuMs ?? s.hostMs);
    host.push(s.hostMs);
  }
  return { ...summarize(samples), samples, clock, hostMedianMs: median(host) };
}

export function summarize(samples: number[]): Omit<Stats, "samples" | "clock" | "hostMedianMs"> {
  if (samples.length === 0) throw new Error("summarize: no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const iqr = sorted.length >= 4 ? quantile(sorted, 0.75) - quantile(sorted, 0.25) : 0;
  return {
    medianMs: quantile(sorted, 0.5),
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
    iqrMs: iqr,
  };
}

/** "12.34 ms", or "n/a" where the adapter gave no GPU time (no timestamp queries). */
export function gpuText(ms: number | null, digits = 2): string {
  return ms === null ? "n/a" : `${ms.toFixed(digits)} ms`;
}
