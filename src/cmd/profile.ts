// `deno task profile`: flags for the per-kernel profile of a training step (bench/profile.ts).

import { DEVICE_FLAGS, parseCommandFlags } from "../cli/args.ts";
import { MODEL_NAMES, type ModelName, type OpsKind } from "../model/model.ts";
import { runProfile } from "../../bench/profile.ts";
import { OPTIMIZER_KINDS, type OptimizerKind } from "../train/optimizer.ts";

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
  optimizer: {
    type: "enum",
    choices: OPTIMIZER_KINDS,
    default: "fused",
    help: "Adam as one fused kernel, or tf.train.adam (tfjs)",
  },
  ...DEVICE_FLAGS,
} as const;

const USAGE = "deno task profile [--model enhanced] [--steps N] [--ops stock|fused] " +
  "[--batch N] [--top N] [--trace FILE]";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, PROFILE_FLAGS, {
    usage: USAGE,
    intro: "Per-kernel GPU time of one training step.",
  });
  if (f === null) return;
  await runProfile({
    command: ["deno task profile", ...argv].join(" "),
    model: f.model as ModelName,
    ops: f.ops as OpsKind,
    batch: f.batch,
    steps: f.steps,
    top: f.top,
    trace: f.trace,
    compare: !f["no-compare"],
    repeats: f.repeats,
    seed: f.seed,
    optimizer: f.optimizer as OptimizerKind,
    backend: f.backend as "webgpu" | "cpu",
    adapter: f.adapter as "any" | "hardware",
  });
}
