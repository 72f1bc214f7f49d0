// `deno task train`: trains a model, writes the run folder, then evaluates on the test set.

import { parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { loadFashionMnist, type Split } from "../data/fashion_mnist.ts";
import { type LoadedCheckpoint, readCheckpoint, resolveCheckpoint } from "../model/checkpoint.ts";
import {
  CONFIG_FLAGS,
  configFromObject,
  explicitOptions,
  flagOfField,
  presetHelp,
  readConfigFile,
  resolveConfig,
  type TrainConfig,
} from "../train/config.ts";
import { describeEstimate, measureStepSeconds } from "../train/estimate.ts";
import {
  type LoopOptions,
  prepareData,
  type PreparedData,
  runTraining,
  type TrainResult,
} from "../train/loop.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { createProgress } from "../train/progress.ts";
import { type AdapterReport, startTf } from "../tf/setup.ts";
import { DeviceFailureError, explainDeviceError } from "../tf/device_guard.ts";
import { AUTOTUNE_SETTINGS, type AutotuneSetting, autotuneSetting } from "../flags.ts";
import { autotuneForTraining } from "../train/autotune_model.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";
import { DEFAULT_BATCH as EVAL_BATCH } from "../eval/inference.ts";
import { exitStatusAfter, type StopSignal, withStopSignals } from "../train/stop_signals.ts";

const DEFS = {
  ...CONFIG_FLAGS,
  config: { type: "string", help: "JSON file of these options (camelCase keys); flags win" },
  resume: { type: "string", help: "continue the run in DIR from its checkpoints/last" },
  out: { type: "string", help: "run folder (default runs/<timestamp>-<model>/)" },
  quiet: { type: "bool", help: "no per-step progress (CI logs)" },
  autotune: {
    type: "enum",
    choices: AUTOTUNE_SETTINGS,
    help: "conv tile configs: on = tune once per adapter (cached), off = built-in defaults, " +
      "refresh = time again (default $FMNIST_AUTOTUNE, else on)",
  },
} as const;

/** Options that fix the architecture or the data order: a resumed run cannot change them. */
const FIXED_ON_RESUME = ["model", "ops", "batch", "seed", "limit", "valSplit", "augment"] as const;

export { INTERRUPTED_EXIT, REQUEUE_EXIT } from "../train/stop_signals.ts";

type Log = (m: string) => void;

/** Where a run goes and what it starts from. */
interface RunPlan {
  cfg: TrainConfig;
  outDir: string;
  resume?: LoadedCheckpoint;
}

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, DEFS, {
    usage: "deno task train [flags]",
    intro: presetHelp(),
  });
  if (f === null) return;
  const log: Log = (m) => console.log(m);
  const autotune = (f.autotune as AutotuneSetting | undefined) ?? autotuneSetting();
  const explicit = explicitOptions(f as unknown as Record<string, unknown>);
  const plan = f.resume
    ? await planResume(f.resume, explicit, f)
    : await planNewRun(explicit, f.config, f.out);
  const { cfg, outDir, resume } = plan;

  const adapter = await startTf("train", cfg.backend, cfg.adapter, log);
  const data = await loadFashionMnist({ dataDir: cfg.data, log });
  const prepared = prepareData(data, cfg);
  if (prepared.trainIdx.length === 0) throw new UsageError("--limit: no training images left");
  await writeRunFolder(plan, log);
  const { tiles } = await autotuneForTraining({
    ...cfg,
    steps: Math.ceil(prepared.trainIdx.length / cfg.batch) * cfg.epochs,
    evalBatch: cfg.valSplit === 0 && cfg.evalLimit === 0 ? null : EVAL_BATCH,
    setting: autotune,
    log,
  });
  const epochsDone = resume ? Number(resume.meta.state.epoch) : 0;
  await logEstimate(adapter, cfg, prepared, log, epochsDone, tiles);

  const { result, signal } = await trainUntilDoneOrInterrupted(cfg, prepared, {
    outDir,
    progress: createProgress({ quiet: f.quiet }),
    log,
    resume,
    tiles,
  });
  if (result.interrupted) {
    result.model.dispose();
    const by = signal ?? "SIGINT";
    console.error(
      `interrupted (${by}): saved ${outDir}/checkpoints/last; continue with: ` +
        `deno task train --resume ${outDir}`,
    );
    Deno.exit(exitStatusAfter(by));
  }
  logOutcome(result, outDir, log);
  try {
    await evaluateAtEnd(cfg, outDir, data.test, log, tiles);
  } finally {
    result.model.dispose();
  }
}

/** --resume DIR: the saved config with the allowed overrides, and checkpoints/last. */
async function planResume(
  dir: string,
  explicit: Partial<TrainConfig>,
  f: { out?: string; config?: string },
): Promise<RunPlan> {
  if (f.out) throw new UsageError("--out: a resumed run continues in its own folder (--resume)");
  if (f.config) throw new UsageError("--config: a resumed run uses its saved config.json");
  const outDir = dir.replace(/\/+$/, "");
  const saved = await readSavedConfig(outDir);
  for (const key of FIXED_ON_RESUME) {
    if (explicit[key] !== undefined && explicit[key] !== saved[key]) {
      throw new UsageError(
        `--${flagOfField(key)}: cannot change on --resume (the run used ${saved[key]})`,
      );
    }
  }
  const cfg = resolveConfig(saved, explicit);
  const resume = await readCheckpoint((await resolveCheckpoint(outDir, "last")).dir);
  return { cfg, outDir, resume };
}

/** A new run: preset < --config file < flags, into --out or a fresh timestamped folder. */
async function planNewRun(
  explicit: Partial<TrainConfig>,
  configFile: string | undefined,
  out: string | undefined,
): Promise<RunPlan> {
  const cfg = resolveConfig(configFile ? await readConfigFile(configFile) : {}, explicit);
  const outDir = out ??
    `runs/${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}-${cfg.model}`;
  if (await isFile(`${outDir}/checkpoints/last/checkpoint.json`)) {
    throw new UsageError(
      `--out ${outDir}: already holds a run; continue it with --resume ${outDir} ` +
        "or choose another folder",
    );
  }
  return { cfg, outDir };
}

/** checkpoints/ and config.json, and the run-folder line. */
async function writeRunFolder({ cfg, outDir, resume }: RunPlan, log: Log) {
  await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
  await writeFileAtomic(`${outDir}/config.json`, JSON.stringify(cfg, null, 2) + "\n");
  log(
    `run folder: ${outDir}${
      resume ? ` (resuming at epoch ${Number(resume.meta.state.epoch) + 1})` : ""
    }`,
  );
}

/** On a software adapter a long run gets a measured estimate before it starts. */
async function logEstimate(
  adapter: AdapterReport,
  cfg: TrainConfig,
  prepared: PreparedData,
  log: Log,
  /** Epochs a resumed run has already done (the estimate covers the rest). */
  epochsDone: number,
  tiles: TilePlan | undefined,
) {
  const stepsPerEpoch = Math.ceil(prepared.trainIdx.length / cfg.batch);
  const epochs = cfg.epochs - epochsDone;
  if (!adapter.isSoftware || stepsPerEpoch * epochs <= 50) return;
  const stepS = await measureStepSeconds(cfg, prepared, tiles);
  log(
    `software adapter (${adapter.description}): ${describeEstimate(stepS, stepsPerEpoch, epochs)}`,
  );
}

/**
 * Runs the training loop with Ctrl-C and SIGTERM handling (src/train/stop_signals.ts): the first
 * signal asks the loop to stop after the current step (it saves checkpoints/last). A failed GPU
 * device is reported with where the checkpoints are and how to continue.
 */
async function trainUntilDoneOrInterrupted(
  cfg: TrainConfig,
  prepared: PreparedData,
  opts: Omit<LoopOptions, "stopRequested">,
): Promise<{ result: TrainResult; signal: StopSignal | null }> {
  try {
    const { value, signal } = await withStopSignals((stopRequested) =>
      runTraining(cfg, prepared, { ...opts, stopRequested })
    );
    return { result: value, signal };
  } catch (e) {
    // An op on a lost device throws a cryptic error of its own: report the failure behind it.
    const failure = explainDeviceError(e);
    if (!(failure instanceof DeviceFailureError)) throw e;
    // Checkpoints on disk are all that survives a lost device: say where they are.
    throw new DeviceFailureError(
      failure.kind,
      `${failure.message}. Checkpoints of the finished epochs are in ${opts.outDir}/checkpoints; ` +
        `continue with: deno task train --resume ${opts.outDir}`,
    );
  }
}

function logOutcome(result: TrainResult, outDir: string, log: Log) {
  const best = Number.isNaN(result.bestValAcc)
    ? "no validation split: the best checkpoint is the last epoch"
    : `best validation accuracy ${result.bestValAcc.toFixed(4)} at epoch ${result.bestEpoch}`;
  log(
    `${best}${result.stoppedEarly ? " (stopped early)" : ""}; checkpoints in ${outDir}/checkpoints`,
  );
}
async function readSavedConfig(runDir: string): Promise<Partial<TrainConfig>> {
  const path = `${runDir}/config.json`;
  let raw;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`--resume ${runDir}: no config.json there (not a run folder?)`);
    }
    throw new UsageError(`--resume ${runDir}: config.json is not valid JSON`);
  }
  return configFromObject(raw, path);
}

/**
 * Evaluates the best checkpoint on the test set (`evaluateRun`: metrics.json, plots,
 * report.html); `--eval-limit N` uses the first N test images, 0 skips.
 */
async function evaluateAtEnd(
  cfg: TrainConfig,
  outDir: string,
  test: Split,
  log: (m: string) => void,
  tiles: TilePlan | undefined,
) {
  if (cfg.evalLimit === 0) return;
  const n = Math.min(cfg.evalLimit ?? test.count, test.count);
  const r = await evaluateRun(outDir, { dataDir: cfg.data, log, limit: n, testSplit: test, tiles });
  log(`test accuracy ${r.accuracy.toFixed(4)} on ${n} test images (report in ${outDir})`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
