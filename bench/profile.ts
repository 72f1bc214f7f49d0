// `deno task profile`: per-kernel breakdown of a training step (tf.profile with GPU timestamps),
// a top-N table, a Chrome trace, and the step time of our fused op vs the stock ops.

import * as tf from "@tensorflow/tfjs-core";
import { helpText, parseFlags } from "../src/cli/args.ts";
import { createModel, MODEL_NAMES, type ModelName } from "../src/model/model.ts";
import type { OpsKind } from "../src/model/layers.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { describeAdapter } from "../src/tf/setup.ts";
import { tileChoices } from "../src/ops/conv_tiling.ts";
import { startBackend } from "./main.ts";
import { textTable, writeTextFileAtomic } from "./report.ts";
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

export const PROFILE_FLAGS = {
  model: { type: "enum", choices: MODEL_NAMES, default: "enhanced", help: "model to profile" },
  steps: { type: "int", min: 1, max: 1000, default: 3, help: "profiled training steps" },
  ops: {
    type: "enum",
    choices: ["fused", "stock"],
    default: "fused",
    help: "conv+BN+ReLU implementation to profile",
  },
  batch: { type: "int", min: 1, max: 4096, default: 128, help: "batch size" },
  top: { type: "int", min: 1, max: 1000, default: 15, help: "rows in the kernel table" },
  trace: { type: "string", help: "write a Chrome trace (Perfetto) JSON to this file" },
  "no-compare": { type: "bool", help: "skip the fused-vs-stock step-time comparison" },
  repeats: {
    type: "int",
    min: 1,
    max: 1000,
    default: 3,
    help: "timed steps per implementation for the comparison",
  },
  seed: { type: "int", default: 1, help: "model initialisation seed" },
  backend: { type: "enum", choices: ["webgpu", "cpu"], default: "webgpu", help: "tfjs backend" },
  adapter: {
    type: "enum",
    choices: ["any", "hardware"],
    default: "any",
    help: "hardware: refuse software adapters such as llvmpipe",
  },
} as const;

const USAGE = "deno task profile [--model enhanced] [--steps N] [--ops stock|fused] " +
  "[--batch N] [--top N] [--trace FILE]";

interface Session {
  step: (x: tf.Tensor4D, y: tf.Tensor2D) => tf.Scalar;
  dispose: () => void;
}

function newSession(model: ModelName, ops: OpsKind, seed: number): Session {
  const m = createModel(model, { ops, seed });
  const optimizer = tf.train.adam(1e-3);
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

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, PROFILE_FLAGS);
  if (f.help) {
    console.log(helpText(USAGE, PROFILE_FLAGS, "Per-kernel GPU time of one training step."));
    return;
  }
  const adapter = await startBackend("profile", f.backend as "webgpu", f.adapter as "any");
  const model = f.model as ModelName;
  const ops = f.ops as OpsKind;
  const [x, y] = syntheticBatch(f.batch, f.seed);
  const runs: { label: string; steps: StepProfile[] }[] = [];
  const times: { ops: OpsKind; stats: Stats }[] = [];
  try {
    // The comparison profiles both implementations; the table is for the one asked for.
    const order: OpsKind[] = f["no-compare"] || model === "baseline"
      ? [ops]
      : [ops, ops === "fused" ? "stock" : "fused"];
    for (const kind of order) {
      const session = newSession(model, kind, f.seed);
      try {
        console.log(`profile: ${model} --ops ${kind}, batch ${f.batch}, ${f.steps} step(s) ...`);
        const steps = await profileSteps(session, x, y, kind === ops ? f.steps : 1);
        runs.push({ label: `${model} --ops ${kind}`, steps });
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
  const tiles = tileChoices();
  if (tiles.size > 0) {
    console.log("\ntile configs (view:shape class -> config):");
    for (const [key, id] of tiles) console.log(`  ${key} -> ${id}`);
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
      command: ["deno task profile", ...argv].join(" "),
      adapter: adapter.description,
      date: new Date().toISOString(),
      batch: f.batch,
    });
    await writeTextFileAtomic(f.trace, JSON.stringify(trace) + "\n");
    console.log(`\nwrote ${f.trace} (open in https://ui.perfetto.dev)`);
  }
}
