// Training options: one table of CLI flags, per-model presets, `--config FILE` (JSON with the
// same option names) and the merge order preset < config file < explicit flags.

import { type FlagDefs, parseFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_DROPOUT, MODEL_NAMES, type ModelName, type OpsKind } from "../model/model.ts";
import type { AdapterPolicy, BackendName } from "../tf/setup.ts";
import type { ScheduleName } from "./schedule.ts";
import type { OptimizerKind } from "./optimizer.ts";
import type { CaptureMode } from "./step_capture_policy.ts";

export interface TrainConfig {
  model: ModelName;
  ops: OpsKind;
  epochs: number;
  batch: number;
  /** Use only the first N training images (0 = all). */
  limit: number;
  valSplit: number;
  seed: number;
  lr: number;
  /** L2 coefficient: penalty λ·Σw² over kernels (gradient applied by FusedAdam or through the
   * loss), see src/train/step.ts. */
  weightDecay: number;
  dropout: number;
  labelSmoothing: number;
  augment: boolean;
  schedule: ScheduleName;
  /** Early-stopping patience in epochs on validation accuracy (0 = off). */
  patience: number;
  backend: BackendName;
  adapter: AdapterPolicy;
  /** Data folder (undefined: the loader's search order). */
  data?: string;
  /** Test images to evaluate at the end: undefined = all, 0 = skip evaluation. */
  evalLimit?: number;
  /** Adam implementation: "fused" (default, src/train/optimizer.ts) or "tfjs" (tf.train.adam). */
  optimizer?: OptimizerKind;
  /** Replay a recorded training step (src/train/step_capture_policy.ts); default "on". */
  capture?: CaptureMode;
}

/** Options every preset shares. */
const COMMON = {
  batch: 128,
  limit: 0,
  valSplit: 0.1,
  seed: 1,
  lr: 1e-3,
  backend: "webgpu",
  adapter: "any",
} as const;

/** What a preset chooses per model; dropout comes from the model itself. Every model's conv
 * blocks run on our kernels (conv + BN + ReLU, or conv + bias + ReLU for baseline) by default. */
type PresetChoice = Pick<
  TrainConfig,
  "epochs" | "weightDecay" | "labelSmoothing" | "augment" | "schedule" | "patience"
>;

function preset(model: ModelName, p: PresetChoice): Omit<TrainConfig, "model"> {
  return {
    ops: "fused",
    epochs: p.epochs,
    ...COMMON,
    weightDecay: p.weightDecay,
    dropout: DEFAULT_DROPOUT[model],
    labelSmoothing: p.labelSmoothing,
    augment: p.augment,
    schedule: p.schedule,
    patience: p.patience,
  };
}

/** Preset per model: what `deno task train --model X` uses unless told otherwise. */
export const PRESETS: Record<ModelName, Omit<TrainConfig, "model">> = {
  baseline: preset("baseline", {
    epochs: 10,
    weightDecay: 0,
    labelSmoothing: 0,
    augment: false,
    schedule: "none",
    patience: 3,
  }),
  enhanced: preset("enhanced", {
    epochs: 15,
    weightDecay: 1e-4,
    labelSmoothing: 0,
    augment: false,
    schedule: "cosine",
    patience: 5,
  }),
  wide: preset("wide", {
    epochs: 30,
    weightDecay: 5e-5,
    labelSmoothing: 0.1,
    augment: true,
    schedule: "cosine",
    patience: 8,
  }),
};

/** Flags that map one-to-one onto TrainConfig fields (no defaults here: presets fill them). */
export const CONFIG_FLAGS = {
  data: { type: "string", help: "Fashion-MNIST folder (default: search, then download)" },
  model: { type: "enum", choices: MODEL_NAMES, help: "model (default enhanced)" },
  ops: {
    type: "enum",
    choices: ["fused", "stock"],
    help: "conv blocks on our WGSL kernels (fused) or on stock tfjs ops",
  },
  epochs: { type: "int", min: 1, max: 10000, help: "training epochs" },
  batch: { type: "int", min: 1, max: 8192, help: "batch size" },
  limit: { type: "int", min: 0, help: "use only the first N training images (0 = all)" },
  "val-split": { type: "float", min: 0, max: 0.5, help: "validation fraction, stratified" },
  seed: { type: "int", min: 0, max: 2 ** 31 - 1, help: "seed for init, shuffling, dropout" },
  backend: { type: "enum", choices: ["webgpu", "cpu"], help: "tfjs backend" },
  adapter: { type: "enum", choices: ["any", "hardware"], help: "refuse software adapters" },
  lr: { type: "float", min: 0, max: 10, help: "Adam learning rate" },
  optimizer: {
    type: "enum",
    choices: ["fused", "tfjs"],
    help: "Adam as one fused kernel per step (default) or tf.train.adam (for comparison)",
  },
  capture: {
    type: "enum",
    choices: ["on", "off"],
    help: "replay a recorded training step where it is exact (default on) or run every step " +
      "through tfjs",
  },
  "weight-decay": {
    type: "float",
    min: 0,
    max: 1,
    help: "L2 coefficient (penalty l2 * sum w^2 on kernels)",
  },
  dropout: { type: "float", min: 0, max: 0.95, help: "dropout rate" },
  "label-smoothing": { type: "float", min: 0, max: 0.5, help: "cross-entropy label smoothing" },
  augment: { type: "bool", help: "augment training batches (shift, flip, erasing)" },
  "no-augment": { type: "bool", help: "switch augmentation off (wide has it on)" },
  schedule: { type: "enum", choices: ["none", "cosine", "plateau"], help: "LR schedule" },
  patience: { type: "int", min: 0, help: "early-stopping patience in epochs (0 = off)" },
  "eval-limit": { type: "int", min: 0, help: "evaluate on the first N test images (0 = skip)" },
} as const satisfies FlagDefs;

const FIELD_OF_FLAG: Record<string, keyof TrainConfig> = {
  "val-split": "valSplit",
  "weight-decay": "weightDecay",
  "label-smoothing": "labelSmoothing",
  "eval-limit": "evalLimit",
};

export function fieldOfFlag(flag: string): keyof TrainConfig {
  return FIELD_OF_FLAG[flag] ?? flag as keyof TrainConfig;
}

export function flagOfField(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The options explicitly set by flags (absent flags are left out). */
export function explicitOptions(
  flags: Record<string, unknown>,
): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const flag of Object.keys(CONFIG_FLAGS)) {
    const v = flags[flag];
    if (flag === "augment" || flag === "no-augment") continue;
    if (v !== undefined) out[fieldOfFlag(flag)] = v;
  }
  if (flags["augment"] && flags["no-augment"]) {
    throw new UsageError("--augment and --no-augment contradict each other");
  }
  if (flags["augment"]) out.augment = true;
  if (flags["no-augment"]) out.augment = false;
  return out as Partial<TrainConfig>;
}

/**
 * Reads a JSON options file (camelCase or kebab-case keys, e.g. written by `tune` or a run's
 * config.json); values are validated exactly like flags. Unknown keys are errors.
 */
export async function readConfigFile(path: string): Promise<Partial<TrainConfig>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--config ${path}: file not found`);
    throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new UsageError(`--config ${path}: expected a JSON object of training options`);
  }
  return configFromObject(raw as Record<string, unknown>, `--config ${path}`);
}

/** Validates a plain object of options by turning it into flags. */
export function configFromObject(
  obj: Record<string, unknown>,
  where: string,
): Partial<TrainConfig> {
  const argv: string[] = [];
  for (const [key, value] of Object.entries(obj)) {
    const flag = key.includes("-") ? key : flagOfField(key);
    if (!(flag in CONFIG_FLAGS) || flag === "no-augment") {
      throw new UsageError(`${where}: unknown option "${key}"`);
    }
    if (value === null || value === undefined) continue;
    if (flag === "augment") {
      if (typeof value !== "boolean") {
        throw new UsageError(`${where}: "${key}" must be true or false`);
      }
      argv.push(value ? "--augment" : "--no-augment");
    } else {
      if (typeof value === "object") throw new UsageError(`${where}: "${key}" must be a scalar`);
      argv.push(`--${flag}`, String(value));
    }
  }
  try {
    return explicitOptions(parseFlags(argv, CONFIG_FLAGS) as unknown as Record<string, unknown>);
  } catch (e) {
    throw new UsageError(`${where}: ${(e as Error).message}`);
  }
}

/** preset(model) < file < flags. */
export function resolveConfig(
  fromFile: Partial<TrainConfig>,
  fromFlags: Partial<TrainConfig>,
): TrainConfig {
  const model = fromFlags.model ?? fromFile.model ?? "enhanced";
  const cfg: TrainConfig = { model, ...PRESETS[model] };
  for (const src of [fromFile, fromFlags]) {
    for (const [k, v] of Object.entries(src)) {
      if (v !== undefined) (cfg as unknown as Record<string, unknown>)[k] = v;
    }
  }
  cfg.model = model;
  return cfg;
}

/** The preset table for --help. */
export function presetHelp(): string {
  const keys = [
    "epochs",
    "lr",
    "weightDecay",
    "dropout",
    "labelSmoothing",
    "augment",
    "schedule",
    "patience",
  ] as const;
  const lines = Object.entries(PRESETS).map(([name, p]) =>
    `  ${name.padEnd(9)} ` + keys.map((k) => `${flagOfField(k)}=${p[k]}`).join(" ") +
    ` ops=${p.ops} batch=${p.batch}`
  );
  return ["defaults per model (flags and --config override them):", ...lines].join("\n");
}
