// The profile behind `deno task profile` (flags: src/cmd/profile.ts): per-kernel breakdown of a
// training step (tf.profile with GPU timestamps), a top-N table, a Chrome trace, the step time of
// our fused op vs the stock ops, and dispatches per step with the host time to issue a step vs its
// GPU time (bench/dispatches.ts).

import * as tf from "@tensorflow/tfjs-core";
import { architecture, createModel, type ModelName } from "../src/model/model.ts";
import type { OpsKind } from "../src/model/layers.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { createAdam, type OptimizerKind } from "../src/train/optimizer.ts";
import { probeCapturedStep, probeStep, type StepProbe } from "./dispatches.ts";
import { threadCpuClock } from "../src/sys/thread_cpu.ts";
import { describeAdapter } from "../src/tf/setup.ts";
import { autotuneSetting } from "../src/flags.ts";
import { planChoices, type TilePlan } from "../src/ops/conv/tile_plan.ts";
import { convLayersOf } from "../src/train/autotune_model.ts";
import { startBackend } from "./run.ts";
import { benchTiles } from "./autotune_suite.ts";
import { viewProblems } from "./conv_views.ts";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { writeFileAtomic } from "../src/files.ts";
import { textTable } from "./report.ts";
import { measure, type Stats } from "./timing.ts";
import {
  type KernelRecord,
  type KernelSummary,
  parsePrograms,
  type StepProfile,
  summarizeKernels,
  summarizePrograms,
  toChromeTrace,
} from "./trace.ts";

interface Session {
  step: (x: tf.Tensor4D, y: tf.Tensor2D) => tf.Scalar;
  dispose: () => void;
}

function newSession(
  model: ModelName,
  ops: OpsKind,
  seed: number,
  optimizerKind: OptimizerKind,
  tiles: TilePlan | undefined,
): Session {
  const m = createModel(model, { ops, seed });
  m.tiles = tiles;
  const optimizer = createAdam(m, 1e-3, optimizerKind);
  const step = makeTrainStep(m, optimizer);
  return {
    step,
    dispose: () => {
      optimizer.dispose();
      m.dispose();
    },
  };
}

/** Synthetic batch: the kernels a step runs do not depend on pixel values. */
function syntheticBatch(batch: number, seed: number): [tf.Tensor4D, tf.Tensor2D] {
  return tf.tidy(() => {
    const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", seed) as tf.Tensor4D;
    const labels = tf.randomUniform([batch], 0, 10, "int32", seed + 1) as tf.Tensor1D;
    return [x, tf.cast(tf.oneHot(labels, 10), "float32") as tf.Tensor2D];
  });
}

/** Profiles `steps` steps after one warm-up step (shader compilation stays out of the figures). */
export async function profileSteps(
  session: Session,
  x: tf.Tensor4D,
  y: tf.Tensor2D,
  steps: number,
): Promise<StepProfile[]> {
  const warm = session.step(x, y);
  await warm.data();
  warm.dispose();
  const out: StepProfile[] = [];
  for (let s = 0; s < steps; s++) {
    const info = await tf.profile(() => session.step(x, y));
    const loss = info.result as tf.Tensor;
    await loss.data();
    loss.dispose();
    const kernels: KernelRecord[] = [];
    for (const k of info.kernels) {
      // tfjs resolves kernelTimeMs inside profile(); older builds left a promise: accept both.
      const raw = await (k.kernelTimeMs as number | Promise<number | { error: string }>);
      const ms = typeof raw === "number" ? raw : 0;
      kernels.push({
        name: k.name,
        ms,
        inputShapes: k.inputShapes,
        outputShapes: k.outputShapes,
        programs: parsePrograms(await (k.extraInfo as string | Promise<string>)),
      });
    }
    out.push({ step: s + 1, kernels });
  }
  return out;
}

function summaryTable(rows: KernelSummary[], top: number, steps: number, what: string): string {
  return textTable(
    [what, "calls/step", "total ms", "mean ms", "share"],
    rows.slice(0, top).map((r) => [
      r.name,
      (r.calls / steps).toFixed(r.calls % steps === 0 ? 0 : 1),
      r.totalMs.toFixed(2),
      r.meanMs.toFixed(3),
      `${r.sharePct.toFixed(1)}%`,
    ]),
  );
}

async function stepTime(session: Session, x: tf.Tensor4D, y: tf.Tensor2D, repeats: number) {
  return await measure(() => session.step(x, y), { warmup: 1, repeats });
}

export interface ProfileOptions {
  /** The command line, recorded in the trace. */
  command: string;
  model: ModelName;
  ops: OpsKind;
  batch: number;
  /** Profiled training steps. */
  steps: number;
  /** Rows in the kernel tables. */
  top: number;
  /** Chrome trace (Perfetto) JSON file to write. */
  trace?: string;
  /** Also time and profile the other implementation. */
  compare: boolean;
  /** Timed steps per implementation for the comparison. */
  repeats: number;
  seed: number;
  optimizer: OptimizerKind;
  backend: "webgpu" | "cpu";
  adapter: "any" | "hardware";
}

/** Profiles, prints the tables and the fused-vs-stock step times, writes the trace. */
export async function runProfile(f: ProfileOptions): Promise<void> {
  const adapter = await startBackend("profile", f.backend, f.adapter);
  const tiles = adapter.backend === "webgpu"
    ? (await benchTiles(autotuneSetting(), (m) => console.log(m), "profile"))?.tiles
    : undefined;
  const { model, ops } = f;
  const [x, y] = syntheticBatch(f.batch, f.seed);
  const runs: { label: string; steps: StepProfile[] }[] = [];
  const times: { ops: OpsKind; stats: Stats }[] = [];
  let probe: StepProbe | null = null;
  let captured: { probe: StepProbe | null; status: string } | null = null;
  try {
    // The comparison profiles both implementations; the table is for the one asked for.
    const order: OpsKind[] = !f.compare ? [ops] : [ops, ops === "fused" ? "stock" : "fused"];
    for (const kind of order) {
      const session = newSession(model, kind, f.seed, f.optimizer as OptimizerKind, tiles);
      try {
        console.log(`profile: ${model} --ops ${kind}, batch ${f.batch}, ${f.steps} step(s) ...`);
        const steps = await profileSteps(session, x, y, kind === ops ? f.steps : 1);
        runs.push({ label: `${model} --ops ${kind}`, steps });
        if (kind === ops) {
          probe = await probeStep(() => session.step(x, y), f.repeats);
          captured = await probeCapturedStep(() => session.step(x, y), String(f.batch), f.repeats);
        }
        if (order.length > 1) {
          times.push({ ops: kind, stats: await stepTime(session, x, y, f.repeats) });
        }
      } finally {
        session.dispose();
      }
    }
  } finally {
    tf.dispose([x, y]);
  }
  const primary = runs[0];
  const kernels = summarizeKernels(primary.steps);
  const total = kernels.reduce((a, k) => a + k.totalMs, 0) / primary.steps.length;
  const clock = adapter.backend === "webgpu" ? "GPU timestamps" : "wall time (cpu backend)";
  console.log(
    `\n${primary.label}, batch ${f.batch}: ${total.toFixed(2)} ms of kernel time per step ` +
      `(${clock}; ${describeAdapter(adapter)})\n`,
  );
  console.log(summaryTable(kernels, f.top, primary.steps.length, "kernel"));
  const programs = summarizePrograms(primary.steps);
  if (programs.length > 0) {
    console.log("\n" + summaryTable(programs, f.top, primary.steps.length, "WebGPU program"));
  }
  if (probe) {
    const p: StepProbe = probe;
    console.log(
      `\ndispatches per step: ${p.dispatchesPerStep ?? "- (cpu backend)"}` +
        (p.byProgram ? ` (${p.byProgram}, ...)` : "") +
        `\nhost time to issue a step ${p.hostIssueMs.toFixed(2)} ms, wall to loss read-back ` +
        `${p.wallMs.toFixed(2)} ms, GPU kernel time ${total.toFixed(2)} ms ` +
        `(median of ${f.repeats}; Adam: ${f.optimizer})` +
        `\nmain-thread CPU per step ${p.mainCpuMs.toFixed(2)} ms` +
        (p.mainCpuPerDispatchMs === null
          ? ""
          : `, per dispatch ${p.mainCpuPerDispatchMs.toFixed(3)} ms`) +
        ` (mean of ${f.repeats}, call to read-back; ${threadCpuClock() ?? "no"} thread clock)`,
    );
  }
  if (captured) {
    const c = captured.probe;
    console.log(
      c
        ? `captured (${captured.status}): host time to issue a step ${c.hostIssueMs.toFixed(2)} ` +
          `ms, wall ${c.wallMs.toFixed(2)} ms, main-thread CPU per step ` +
          `${c.mainCpuMs.toFixed(2)} ms, per dispatch ${c.mainCpuPerDispatchMs!.toFixed(3)} ms`
        : `captured: no (${captured.status})`,
    );
  }
  if (tiles && ops === "fused") {
    const problems = convLayersOf(architecture(model)).flatMap(({ layer }) =>
      viewProblems(layer, f.batch)
    );
    console.log("\ntile configs (view:shape class -> config):");
    const backend = tf.backend() as unknown as WebGPUBackend;
    for (const [key, id] of planChoices(tiles, problems, backend)) console.log(`  ${key} -> ${id}`);
  }
  if (times.length === 2) {
    const fused = times.find((t) => t.ops === "fused")!.stats;
    const stock = times.find((t) => t.ops === "stock")!.stats;
    console.log(
      `\nstep time (${fused.clock}, median of ${f.repeats}): fused ${
        fused.medianMs.toFixed(2)
      } ms, ` +
        `stock ${stock.medianMs.toFixed(2)} ms, stock/fused ${
          (stock.medianMs / fused.medianMs).toFixed(2)
        }x`,
    );
  }
  if (f.trace) {
    const trace = toChromeTrace(runs, {
      command: f.command,
      adapter: adapter.description,
      date: new Date().toISOString(),
      batch: f.batch,
    });
    await writeFileAtomic(f.trace, JSON.stringify(trace) + "\n");
    console.log(`\nwrote ${f.trace} (open in https://ui.perfetto.dev)`);
  }
}
