// Dispatch counting for the webgpu backend: wraps the backend's recordAndSubmit (the one place
// where tfjs-webgpu encodes a compute dispatch, for stock and custom programs alike) and counts
// calls, per program class. On a GPU each dispatch costs tens of microseconds of host time in
// tfjs, so the count per training step is a figure of its own next to the kernel times.

import * as tf from "@tensorflow/tfjs-core";
import { threadCpuMs } from "../src/sys/thread_cpu.ts";
import { median } from "../src/stats.ts";
import { StepCapturePolicy, WARMUP_STEPS } from "../src/train/step_capture_policy.ts";

export interface DispatchCount {
  total: number;
  /** Dispatches per program class name (e.g. BinaryOpProgram, AdamWeightsProgram). */
  byProgram: Map<string, number>;
}

type Recorder = (program: { constructor: { name: string } }, ...rest: unknown[]) => void;
interface Countable {
  recordAndSubmit: Recorder;
}

let active: DispatchCount[] = [];
const wrapped = new WeakSet<object>();

/** Installs the counting wrapper on the active webgpu backend (once per backend instance). */
function install(): boolean {
  if (tf.getBackend() !== "webgpu") return false;
  const backend = tf.backend() as unknown as Countable;
  if (wrapped.has(backend)) return true;
  const original = backend.recordAndSubmit.bind(backend);
  backend.recordAndSubmit = (program, ...rest) => {
    const name = program.constructor.name;
    for (const c of active) {
      c.total++;
      c.byProgram.set(name, (c.byProgram.get(name) ?? 0) + 1);
    }
    original(program, ...rest);
  };
  wrapped.add(backend);
  return true;
}

/**
 * Runs `fn` and counts the dispatches it encodes. Returns null for the count on a backend that
 * does not dispatch (cpu). Counting nests: an outer count includes an inner one's dispatches.
 */
export function countDispatches<T>(fn: () => T): { result: T; count: DispatchCount | null } {
  if (!install()) return { result: fn(), count: null };
  const count: DispatchCount = { total: 0, byProgram: new Map() };
  active = [...active, count];
  try {
    return { result: fn(), count };
  } finally {
    active = active.filter((c) => c !== count);
  }
}

/** "BinaryOpProgram 120, ..." most frequent first, `top` entries. */
export function formatByProgram(count: DispatchCount, top = 8, per = 1): string {
  return [...count.byProgram.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, n]) => `${name} ${Number.isInteger(n / per) ? n / per : (n / per).toFixed(1)}`)
    .join(", ");
}

export interface StepProbe {
  /** Dispatches one step encodes (null on the cpu backend). */
  dispatchesPerStep: number | null;
  /** Median host time to issue the step: the JS call returning, all work encoded/submitted. */
  hostIssueMs: number;
  /** Median wall time from the call to the loss read back (queue drained). */
  wallMs: number;
  /** Mean CPU time of the main (JavaScript) thread per step, call to read-back: encoding,
   * submitting and reading, without lavapipe's worker threads (src/sys/thread_cpu.ts). */
  mainCpuMs: number;
  /** mainCpuMs / dispatchesPerStep (null on the cpu backend). */
  mainCpuPerDispatchMs: number | null;
  /** Per program class, per step. */
  byProgram: string;
}

/** Times `repeats` steps after a warm-up one: dispatch count, issue time and wall time. */
export async function probeStep(work: () => tf.Tensor, repeats = 3): Promise<StepProbe> {
  const warm = work();
  await warm.data();
  warm.dispose();
  let total: DispatchCount | null = null;
  const t = await timeIssuedSteps(() => {
    const { result, count } = countDispatches(work);
    if (count) {
      total ??= { total: 0, byProgram: new Map() };
      total.total += count.total;
      for (const [k, n] of count.byProgram) {
        total.byProgram.set(k, (total.byProgram.get(k) ?? 0) + n);
      }
    }
    return result;
  }, repeats);
  const dispatchesPerStep = total ? (total as DispatchCount).total / repeats : null;
  return {
    dispatchesPerStep,
    ...t,
    mainCpuPerDispatchMs: dispatchesPerStep ? t.mainCpuMs / dispatchesPerStep : null,
    byProgram: total ? formatByProgram(total, 8, repeats) : "",
  };
}

/**
 * probeStep for the captured path (src/train/step_capture_policy.ts): the step through a
 * capture policy until it replays, then `repeats` replays timed the same way. `probe` is null
 * when the step is never captured; `status` says which path it took and why.
 */
export async function probeCapturedStep(
  work: () => tf.Tensor,
  key: string,
  repeats = 3,
): Promise<{ probe: StepProbe | null; status: string }> {
  const policy = new StepCapturePolicy("on");
  const run = () => policy.run(key, {}, () => [work()])[0];
  try {
    for (let i = 0; i < WARMUP_STEPS + 2 && !policy.active; i++) {
      const r = run();
      await r.data();
      r.dispose();
    }
    const dispatchesPerStep = policy.dispatchesPerReplay;
    if (dispatchesPerStep === null) return { probe: null, status: policy.status() };
    const t = await timeIssuedSteps(run, repeats);
    const status = policy.status();
    if (policy.counts.replayed !== repeats) return { probe: null, status };
    return {
      probe: {
        dispatchesPerStep,
        ...t,
        mainCpuPerDispatchMs: t.mainCpuMs / dispatchesPerStep,
        byProgram: "",
      },
      status,
    };
  } finally {
    policy.dispose();
  }
}

/** Issue time and wall time (medians) and main-thread CPU (mean) of `repeats` steps. */
async function timeIssuedSteps(
  issueStep: () => tf.Tensor,
  repeats: number,
): Promise<{ hostIssueMs: number; wallMs: number; mainCpuMs: number }> {
  const issue: number[] = [];
  const wall: number[] = [];
  const cpu0 = threadCpuMs();
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const result = issueStep();
    const t1 = performance.now();
    await result.data();
    wall.push(performance.now() - t0);
    issue.push(t1 - t0);
    result.dispose();
  }
  // A mean, not a median: the /proc fallback clock advances in 10 ms ticks.
  const mainCpuMs = (threadCpuMs() - cpu0) / repeats;
  return { hostIssueMs: median(issue), wallMs: median(wall), mainCpuMs };
}
