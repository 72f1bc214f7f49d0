// `deno task train`: trains a model, writes the run folder, then evaluates on the test set.

import { helpText, parseFlags, UsageError } from "../cli/args.ts";
import { loadFashionMnist, type Split } from "../data/fashion_mnist.ts";
import { readCheckpoint, resolveCheckpoint } from "../model/checkpoint.ts";
import {
  CONFIG_FLAGS,
  configFromObject,
  explicitOptions,
  presetHelp,
  readConfigFile,
  resolveConfig,
  type TrainConfig,
} from "../train/config.ts";
import { describeEstimate, measureStepSeconds } from "../train/estimate.ts";
import { prepareData, runTraining, type TrainResult } from "../train/loop.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { createProgress } from "../train/progress.ts";
import { startTf } from "../tf/setup.ts";
import { DeviceFailureError } from "../tf/device_guard.ts";
import {
  AUTOTUNE_SETTINGS,
  type AutotuneSetting,
  autotuneSettingFromEnv,
} from "../ops/autotune.ts";
import { autotuneForTraining } from "../ops/autotune_model.ts";
import { DEFAULT_BATCH as EVAL_BATCH } from "../eval/inference.ts";

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

/** Exit status after SIGINT (128 + 2, the shell convention). */
export const INTERRUPTED_EXIT = 130;

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, DEFS);
  if (f.help) {
    console.log(helpText("deno task train [flags]", DEFS, presetHelp()));
    return;
  }
  const log = (m: string) => console.log(m);
  const autotune = (f.autotune as AutotuneSetting | undefined) ?? autotuneSettingFromEnv();
  const explicit = explicitOptions(f as unknown as Record<string, unknown>);
  let cfg: TrainConfig;
  let outDir: string;
  let resume;
  if (f.resume) {
    if (f.out) throw new UsageError("--out: a resumed run continues in its own folder (--resume)");
    if (f.config) throw new UsageError("--config: a resumed run uses its saved config.json");
    outDir = f.resume.replace(/\/+$/, "");
    const saved = await readSavedConfig(outDir);
    for (const key of FIXED_ON_RESUME) {
      if (explicit[key] !== undefined && explicit[key] !== saved[key]) {
        throw new UsageError(
          `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: cannot change on --resume ` +
            `(the run used ${saved[key]})`,
        );
      }
    }
    cfg = resolveConfig(saved, explicit);
    resume = await readCheckpoint((await resolveCheckpoint(outDir, "last")).dir);
  } else {
    cfg = resolveConfig(f.config ? await readConfigFile(f.config) : {}, explicit);
    outDir = f.out ??
      `runs/${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}-${cfg.model}`;
    if (await isFile(`${outDir}/checkpoints/last/checkpoint.json`)) {
      throw new UsageError(
        `--out ${outDir}: already holds a run; continue it with --resume ${outDir} ` +
          "or choose another folder",
      );
    }
  }

  const adapter = await startTf("train", cfg.backend, cfg.adapter, log);
  const data = await loadFashionMnist({ dataDir: cfg.data, log });
  const prepared = prepareData(data, cfg);
  if (prepared.trainIdx.length === 0) throw new UsageError("--limit: no training images left");
  await Deno.mkdir(`${outDir}/checkpoints`, { recursive: true });
  await writeTextAtomic(`${outDir}/config.json`, JSON.stringify(cfg, null, 2) + "\n");
  log(
    `run folder: ${outDir}${
      resume ? ` (resuming at epoch ${Number(resume.meta.state.epoch) + 1})` : ""
    }`,
  );

  const stepsPerEpoch = Math.ceil(prepared.trainIdx.length / cfg.batch);
  await autotuneForTraining({
    ...cfg,
    steps: stepsPerEpoch * cfg.epochs,
    evalBatch: cfg.valSplit === 0 && cfg.evalLimit === 0 ? null : EVAL_BATCH,
    setting: autotune,
    log,
  });
  if (adapter.isSoftware && stepsPerEpoch * cfg.epochs > 50) {
    const stepS = await measureStepSeconds(cfg, prepared);
    log(
      `software adapter (${adapter.description}): ${
        describeEstimate(stepS, stepsPerEpoch, cfg.epochs)
      }`,
    );
  }

  let stop = false;
  const onSigint = () => {
    if (stop) Deno.exit(INTERRUPTED_EXIT); // second Ctrl-C: give up at once
    stop = true;
    console.error("\ninterrupt: finishing the current step, then saving checkpoints/last ...");
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let result: TrainResult;
  try {
    result = await runTraining(cfg, prepared, {
      outDir,
      progress: createProgress({ quiet: f.quiet }),
      log,
      resume,
      stopRequested: () => stop,
    });
  } catch (e) {
    if (!(e instanceof DeviceFailureError)) throw e;
    // Checkpoints on disk are all that survives a lost device: say where they are.
    throw new DeviceFailureError(
      e.kind,
      `${e.message}. Checkpoints of the finished epochs are in ${outDir}/checkpoints; ` +
        `continue with: deno task train --resume ${outDir}`,
    );
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  if (result.interrupted) {
    result.model.dispose();
    console.error(
      `interrupted: saved ${outDir}/checkpoints/last; continue with: ` +
        `deno task train --resume ${outDir}`,
    );
    Deno.exit(INTERRUPTED_EXIT);
  }
  const best = Number.isNaN(result.bestValAcc)
    ? "no validation split: the best checkpoint is the last epoch"
    : `best validation accuracy ${result.bestValAcc.toFixed(4)} at epoch ${result.bestEpoch}`;
  log(
    `${best}${result.stoppedEarly ? " (stopped early)" : ""}; checkpoints in ${outDir}/checkpoints`,
  );
  try {
    await evaluateAtEnd(cfg, outDir, data.test, log);
  } finally {
    result.model.dispose();
  }
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
) {
  if (cfg.evalLimit === 0) return;
  const n = Math.min(cfg.evalLimit ?? test.count, test.count);
  const r = await evaluateRun(outDir, { dataDir: cfg.data, log, limit: n, testSplit: test });
  log(`test accuracy ${r.accuracy.toFixed(4)} on ${n} test images (report in ${outDir})`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function writeTextAtomic(path: string, text: string) {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}
