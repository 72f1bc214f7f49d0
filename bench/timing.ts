// Timing helpers for benchmarks: warm-up, repeated runs, median and spread.
//
// Two clocks. "gpu-timestamp": the sum of per-program GPU durations from timestamp queries
// (`tf.time(f).kernelMs`; tfjs-webgpu wraps every program it dispatches, ours included, in a
// compute pass with timestampWrites). "host-sync": wall time from the call to the moment the
// results are read back (`await t.data()`), which waits for the queue. On llvmpipe both clocks
// are CPU time; on a real GPU the host clock also counts dispatch overhead and the readback.

import * as tf from "@tensorflow/tfjs-core";

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

/** Runs `work` once, waits for its results, disposes them; returns [clock ms, host ms]. */
async function runOnce(work: Work, clock: Clock): Promise<[number, number]> {
  if (clock === "gpu-timestamp") {
    let out: tf.TensorContainer = [];
    const start = performance.now();
    const info = await tf.time(() => {
      out = work();
    });
    // tf.time resolves after the timestamp queries are read back, i.e. after the queue drained.
    await syncAll(out);
    const host = performance.now() - start;
    tf.dispose(out);
    return [info.kernelMs as number, host];
  }
  const start = performance.now();
  const out = work();
  await syncAll(out);
  const host = performance.now() - start;
  tf.dispose(out);
  return [host, host];
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
  for (let i = 0; i < opts.warmup; i++) await runOnce(work, "host-sync");
  const samples: number[] = [];
  const host: number[] = [];
  for (let i = 0; i < Math.max(1, opts.repeats); i++) {
    const [t, h] = await runOnce(work, clock);
    samples.push(t);
    host.push(h);
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

export function median(xs: number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

/** Linear-interpolated quantile of an ascending array. */
export function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
