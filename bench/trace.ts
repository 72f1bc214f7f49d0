// Per-kernel profiles of training steps: aggregation into a top-N table and export as a Chrome
// trace (JSON "traceEvents", viewable in Perfetto / chrome://tracing).
//
// tfjs gives each kernel's GPU duration (timestamp queries) but no start time, so the trace lays
// a step's kernels end to end in dispatch order: the GPU queue runs them in that order, and the
// gaps between them (host overhead) are not part of the picture.

/** One kernel execution in a profiled step. */
export interface KernelRecord {
  /** tfjs kernel name, e.g. "Conv2D" or "ConvBnReluTrain". */
  name: string;
  /** GPU time (webgpu with timestamp queries) or wall time (cpu backend), ms. */
  ms: number;
  inputShapes: number[][];
  outputShapes: number[][];
  /** The WebGPU programs the kernel ran with their times, e.g. [["Conv2DMMProgram", 1.2]]. */
  programs: [string, number][];
}

export interface StepProfile {
  step: number;
  kernels: KernelRecord[];
}

export interface KernelSummary {
  name: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  /** Percent of the summed kernel time of all profiled steps. */
  sharePct: number;
}

/** Parses tfjs-webgpu's `extraInfo` ("Conv2DMMProgram: 1.23, BinaryOpProgram: 0.4"). */
export function parsePrograms(extraInfo: string | undefined): [string, number][] {
  if (!extraInfo) return [];
  const out: [string, number][] = [];
  for (const m of extraInfo.matchAll(/([\w$]+): ([-\d.eE+]+)/g)) {
    const ms = Number(m[2]);
    if (Number.isFinite(ms)) out.push([m[1], ms]);
  }
  return out;
}

/** Totals per kernel name over all steps, largest first (ties by name). */
export function summarizeKernels(steps: StepProfile[]): KernelSummary[] {
  return summarize(steps.flatMap((s) => s.kernels.map((k) => [k.name, k.ms] as [string, number])));
}

/** Totals per WebGPU program over all steps, largest first. */
export function summarizePrograms(steps: StepProfile[]): KernelSummary[] {
  return summarize(steps.flatMap((s) => s.kernels.flatMap((k) => k.programs)));
}

function summarize(items: [string, number][]): KernelSummary[] {
  const by = new Map<string, { calls: number; totalMs: number }>();
  let all = 0;
  for (const [name, ms] of items) {
    const e = by.get(name) ?? { calls: 0, totalMs: 0 };
    e.calls++;
    e.totalMs += ms;
    all += ms;
    by.set(name, e);
  }
  return [...by.entries()]
    .map(([name, e]) => ({
      name,
      calls: e.calls,
      totalMs: e.totalMs,
      meanMs: e.totalMs / e.calls,
      sharePct: all > 0 ? 100 * e.totalMs / all : 0,
    }))
    .sort((a, b) => b.totalMs - a.totalMs || a.name.localeCompare(b.name));
}

export interface TraceEvent {
  name: string;
  ph: "X" | "M";
  /** Microseconds. */
  ts: number;
  dur: number;
  pid: number;
  tid: number;
  cat?: string;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit: "ms";
  metadata: Record<string, unknown>;
}

/**
 * One process per profiled run (`label`, e.g. "enhanced fused"); thread 1 holds one event per
 * step, thread 2 the kernels, thread 3 the WebGPU programs inside each kernel.
 */
export function toChromeTrace(
  runs: { label: string; steps: StepProfile[] }[],
  metadata: Record<string, unknown> = {},
): ChromeTrace {
  const events: TraceEvent[] = [];
  runs.forEach((run, r) => {
    const pid = r + 1;
    const meta = (name: string, tid: number, value: string): TraceEvent => ({
      name,
      ph: "M",
      ts: 0,
      dur: 0,
      pid,
      tid,
      args: { name: value },
    });
    events.push(
      meta("process_name", 0, run.label),
      meta("thread_name", 1, "steps"),
      meta("thread_name", 2, "kernels (GPU time, end to end)"),
      meta("thread_name", 3, "WebGPU programs"),
    );
    let t = 0; // µs
    for (const step of run.steps) {
      const stepStart = t;
      for (const k of step.kernels) {
        const dur = k.ms * 1000;
        events.push({
          name: k.name,
          cat: "kernel",
          ph: "X",
          ts: t,
          dur,
          pid,
          tid: 2,
          args: { inputShapes: k.inputShapes, outputShapes: k.outputShapes, step: step.step },
        });
        let pt = t;
        for (const [program, ms] of k.programs) {
          events.push({
            name: program,
            cat: "program",
            ph: "X",
            ts: pt,
            dur: ms * 1000,
            pid,
            tid: 3,
            args: { kernel: k.name },
          });
          pt += ms * 1000;
        }
        t += dur;
      }
      events.push({
        name: `step ${step.step}`,
        cat: "step",
        ph: "X",
        ts: stepStart,
        dur: t - stepStart,
        pid,
        tid: 1,
        args: { kernels: step.kernels.length },
      });
    }
  });
  return { traceEvents: events, displayTimeUnit: "ms", metadata };
}
