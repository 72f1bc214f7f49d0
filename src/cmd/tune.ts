// `deno task tune`: grid or random search over learning rate, batch size, dropout, L2 and
// epochs on a small budget; writes results.csv, results.md (ranked by validation accuracy) and
// best-config.json for `deno task train --config FILE`.
//
// The search is a plan folder (src/train/tune_plan.ts) whose trials are units of work:
//   tune [search flags]                plan into --out, run every trial here, collect
//   tune --plan DIR [search flags]     only write the plan
//   tune --trial I --plan DIR          run trial I (0-based) of the plan in DIR
//   tune --collect DIR                 rank the results there; list missing and failed trials
//   tune --resume DIR                  run the plan's unfinished trials here, collect
//   tune --slurm [slurm flags] ...     plan into --out, submit a job array + a collect job

import { resolve } from "node:path";
import { type FlagDefs, parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { CONFIG_FLAGS, explicitOptions, resolveConfig, type TrainConfig } from "../train/config.ts";
import { createProgress } from "../train/progress.ts";
import { exitStatusAfter, withStopSignals } from "../train/stop_signals.ts";
import { gridTrials, randomTrials, rankResults, type SearchSpace } from "../train/tune.ts";
import {
  checkTrialIndex,
  newPlan,
  readPlan,
  readTrialConfig,
  trialDir,
  type TunePlan,
  writePlan,
} from "../train/tune_plan.ts";
import { readTrialResult, runTrial, withTrialLock } from "../train/tune_trial.ts";
import { collectResults, describeGaps, writeResults } from "../train/tune_collect.ts";
import { arrayScript, collectScript, findOnPath, sbatch, type SlurmJob } from "../cluster/slurm.ts";
import { startTf } from "../tf/setup.ts";

const SEARCHED = ["lr", "batch", "dropout", "weight-decay", "epochs"] as const;

const FIXED = Object.fromEntries(
  Object.entries(CONFIG_FLAGS).filter(([k]) => !(SEARCHED as readonly string[]).includes(k)),
);

const SEARCH_DEFS = {
  search: { type: "enum", choices: ["grid", "random"], default: "grid", help: "search strategy" },
  trials: {
    type: "int",
    min: 1,
    max: 1000,
    help: "number of trials (default: grid = all, random = 8)",
  },
  lr: { type: "list", default: ["5e-4", "1e-3", "2e-3"], help: "learning rates to try" },
  batch: { type: "list", default: ["64", "128"], help: "batch sizes to try" },
  dropout: { type: "list", default: ["0.2", "0.4"], help: "dropout rates to try" },
  "weight-decay": { type: "list", default: ["0", "1e-4"], help: "L2 coefficients to try" },
  epochs: { type: "list", default: ["2"], help: "epoch counts to try" },
  ...FIXED,
  out: { type: "string", help: "results folder (default runs/tune-<timestamp>/)" },
} as FlagDefs;

const MODE_DEFS = {
  plan: { type: "string", help: "write the plan to DIR (with --trial: run a trial of DIR)" },
  trial: { type: "int", min: 0, help: "run trial I (0-based) of the plan in --plan DIR" },
  collect: { type: "string", help: "rank the trial results in DIR; list missing/failed ones" },
  resume: { type: "string", help: "run the unfinished trials of the plan in DIR, then collect" },
  slurm: { type: "bool", help: "submit the trials as a Slurm job array (+ a collect job)" },
} as FlagDefs;

const SLURM_DEFS = {
  partition: { type: "string", help: "Slurm partition (default: the cluster's)" },
  "gpus-per-trial": { type: "int", min: 0, max: 64, default: 1, help: "GPUs per array task" },
  "max-parallel": { type: "int", min: 1, help: "array tasks at once (default: all trials)" },
  time: { type: "string", help: "Slurm time limit per trial, e.g. 2:00:00" },
  "cpus-per-trial": { type: "int", min: 1, help: "CPUs per array task (default: Slurm's)" },
  "dry-run": { type: "bool", help: "write the plan and sbatch scripts, submit nothing" },
} as FlagDefs;

const DEFS = {
  ...SEARCH_DEFS,
  ...MODE_DEFS,
  ...SLURM_DEFS,
  quiet: { type: "bool", help: "no per-step progress" },
} as FlagDefs;

type Log = (m: string) => void;
type Parsed = Record<string, unknown>;

/** The flags named on the command line (defaults do not count). */
function givenFlags(argv: string[]): Set<string> {
  const names = argv.filter((a) => /^--[a-z]/.test(a)).map((a) => a.slice(2).split("=")[0]);
  return new Set(names);
}

/** Each given flag must be in `allowed`, else a UsageError naming it and the mode. */
function onlyFlags(given: Set<string>, allowed: string[], mode: string) {
  for (const flag of given) {
    if (!allowed.includes(flag) && flag !== mode.slice(2)) {
      throw new UsageError(`--${flag}: not with ${mode}`);
    }
  }
}

export async function main(argv: string[]): Promise<void> {
  const parsed = parseCommandFlags(argv, DEFS, {
    usage: "deno task tune [flags]",
    intro: "Searches hyperparameters on a small budget (--limit, --epochs). Modes: plain (all " +
      "trials here), --plan DIR, --trial I --plan DIR, --collect DIR, --resume DIR, --slurm.",
  });
  if (parsed === null) return;
  const f = parsed as Parsed;
  const given = givenFlags(argv);
  const log: Log = (m) => console.log(m);
  const search = [...Object.keys(SEARCH_DEFS), "quiet"];
  if (f.collect !== undefined) {
    onlyFlags(given, [], "--collect");
    return await collectCommand(f.collect as string, log);
  }
  if (f.trial !== undefined) {
    onlyFlags(given, ["plan", "quiet"], "--trial");
    if (f.plan === undefined) throw new UsageError("--trial: needs --plan DIR (the plan folder)");
    return await trialCommand(f.plan as string, f.trial as number, f.quiet as boolean, log);
  }
  if (f.resume !== undefined) {
    onlyFlags(given, ["quiet"], "--resume");
    const dir = f.resume as string;
    return await runPlanHere(dir, await readPlan(dir, "--resume"), f.quiet as boolean, log);
  }
  if (f.slurm) {
    onlyFlags(given, [...search, ...Object.keys(SLURM_DEFS)], "--slurm");
    return await slurmCommand(f, log);
  }
  onlyFlags(given, [...search, "plan"], f.plan !== undefined ? "--plan" : "a plain tune");
  if (f.plan !== undefined) {
    if (f.out !== undefined) {
      throw new UsageError("--out: not with --plan (--plan names the folder)");
    }
    const dir = f.plan as string;
    const plan = planFromFlags(f);
    await writePlan(dir, plan, "--plan");
    log(`planned ${plan.trials.length} trials in ${dir}`);
    log(
      `run one with: deno task tune --trial I --plan ${dir}   (I = 0..${plan.trials.length - 1})`,
    );
    log(`then rank them with: deno task tune --collect ${dir}`);
    return;
  }
  const dir = outDir(f);
  const plan = planFromFlags(f);
  await writePlan(dir, plan, "--out");
  await runPlanHere(dir, plan, f.quiet as boolean, log);
}

/** Parses a list flag of numbers with the bounds of the matching training flag. */
function numbers(flag: (typeof SEARCHED)[number], items: string[]): number[] {
  const def = CONFIG_FLAGS[flag];
  if (items.length === 0) throw new UsageError(`--${flag} needs at least one value`);
  return items.map((s) => {
    const n = Number(s);
    if (s === "" || !Number.isFinite(n) || (def.type === "int" && !Number.isInteger(n))) {
      throw new UsageError(
        `--${flag}: "${s}" is not ${def.type === "int" ? "an integer" : "a number"}`,
      );
    }
    if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
      throw new UsageError(`--${flag}: ${s} is outside ${def.min}..${def.max}`);
    }
    return n;
  });
}

/** The search the flags describe: space, the fixed options, the trial list. */
function planFromFlags(f: Parsed): TunePlan {
  const space: SearchSpace = {
    lr: numbers("lr", f.lr as string[]),
    batch: numbers("batch", f.batch as string[]),
    dropout: numbers("dropout", f.dropout as string[]),
    weightDecay: numbers("weight-decay", f["weight-decay"] as string[]),
    epochs: numbers("epochs", f.epochs as string[]),
  };
  // The searched flags are lists here; each trial sets those fields itself.
  const fixed = Object.fromEntries(
    Object.entries(explicitOptions(f)).filter(([k]) => !(k in space)),
  );
  const base = resolveConfig({}, { limit: 5000, ...fixed, evalLimit: 0 });
  const trials = f.search === "random"
    ? randomTrials(space, (f.trials as number | undefined) ?? 8, base.seed)
    : f.trials
    ? randomTrials(space, f.trials as number, base.seed)
    : gridTrials(space);
  return newPlan(f.search as TunePlan["search"], space, base, trials);
}

function outDir(f: Parsed): string {
  return (f.out as string | undefined) ??
    `runs/tune-${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}`;
}

function describe(t: Pick<TrainConfig, keyof SearchSpace>): string {
  return `lr=${t.lr} batch=${t.batch} dropout=${t.dropout} weight-decay=${t.weightDecay} epochs=${t.epochs}`;
}

/** Starts tf and loads the data the plan's trials train on. */
async function prepare(plan: TunePlan, log: Log) {
  await startTf("tune", plan.base.backend, plan.base.adapter, log);
  return await loadFashionMnist({ dataDir: plan.base.data, log });
}

/** Plain `tune` and `--resume`: every unfinished trial in this process, then the ranking. */
async function runPlanHere(dir: string, plan: TunePlan, quiet: boolean, log: Log) {
  const data = await prepare(plan, log);
  const n = plan.trials.length;
  log(
    `${n} trials (${plan.search}) of ${plan.base.model}, ${plan.base.limit || "all"} images; ` +
      `results in ${dir}`,
  );
  const { value: stoppedAt, signal } = await withStopSignals(async (stopRequested) => {
    for (const [i, trial] of plan.trials.entries()) {
      log(`trial ${i} (${i + 1}/${n}): ${describe(trial)}`);
      const start = performance.now();
      try {
        const outcome = await withTrialLock(dir, i, () =>
          runTrial(dir, plan, i, data, {
            progress: createProgress({ quiet }),
            log,
            stopRequested,
          }));
        if (outcome.status === "interrupted") return i;
        const s = ((performance.now() - start) / 1000).toFixed(1);
        const done = outcome.status === "finished-before" ? "finished before; " : "";
        log(`  ${done}val acc ${outcome.result.valAcc.toFixed(4)} (${s} s)`);
      } catch (e) {
        if (e instanceof UsageError) throw e;
        log(`  trial ${i} failed: ${(e as Error).message}`);
      }
      const collected = await collectResults(dir, plan);
      if (collected.ranked.length > 0) await writeResults(dir, plan, collected); // partial results survive
    }
    return null;
  });
  if (signal !== null && stoppedAt !== null) {
    console.error(
      `interrupted (${signal}): trial ${stoppedAt} saved ${
        trialDir(dir, stoppedAt)
      }/checkpoints/last; ` +
        `continue with: deno task tune --resume ${dir}`,
    );
    Deno.exit(exitStatusAfter(signal));
  }
  await logRanking(dir, plan, log);
}

async function logRanking(dir: string, plan: TunePlan, log: Log) {
  const collected = await collectResults(dir, plan);
  for (const line of describeGaps(dir, collected)) log(line);
  await writeResults(dir, plan, collected);
  const best = rankResults(collected.ranked)[0];
  log(`best: trial ${best.trial}, ${describe(best)} -> val acc ${best.valAcc.toFixed(4)}`);
  log(`results in ${dir}/results.md; reuse it: deno task train --config ${dir}/best-config.json`);
}

async function collectCommand(dir: string, log: Log) {
  const plan = await readPlan(dir, "--collect");
  await logRanking(dir, plan, log);
}

async function trialCommand(dir: string, i: number, quiet: boolean, log: Log) {
  const plan = await readPlan(dir, "--plan");
  checkTrialIndex(plan, i, dir);
  await readTrialConfig(dir, i);
  const before = await readTrialResult(dir, i);
  if (before) {
    log(`trial ${i}: finished before (val acc ${before.valAcc.toFixed(4)}); nothing to do`);
    return;
  }
  // Locked before tf starts: a second process on the same trial is refused at once.
  const { value: outcome, signal } = await withTrialLock(dir, i, async () => {
    const data = await prepare(plan, log);
    log(`trial ${i} of ${dir}: ${describe(plan.trials[i])}`);
    return await withStopSignals((stopRequested) =>
      runTrial(dir, plan, i, data, { progress: createProgress({ quiet }), log, stopRequested })
    );
  });
  if (outcome.status === "interrupted") {
    console.error(
      `interrupted (${signal}): saved ${trialDir(dir, i)}/checkpoints/last; running ` +
        `tune --trial ${i} --plan ${dir} again resumes it`,
    );
    Deno.exit(exitStatusAfter(signal ?? "SIGINT"));
  }
  const r = outcome.result;
  log(
    `trial ${i}${outcome.status === "finished" && outcome.resumed ? " (resumed)" : ""}: ` +
      (r.error ? `failed (${r.error})` : `val acc ${r.valAcc.toFixed(4)}`) +
      `; result in ${trialDir(dir, i)}/result.json`,
  );
}

async function slurmCommand(f: Parsed, log: Log) {
  const dryRun = f["dry-run"] as boolean;
  // Checked before anything is written: without sbatch the plan would be left unsubmitted.
  if (!dryRun && (await findOnPath("sbatch")) === null) {
    throw new UsageError(
      "--slurm: sbatch is not on PATH (run this on a Slurm login node, or add --dry-run to " +
        "only write the plan and scripts)",
    );
  }
  const plan = planFromFlags(f);
  const dir = resolve(outDir(f));
  const job: SlurmJob = {
    planDir: dir,
    trials: plan.trials.length,
    maxParallel: Math.min(
      (f["max-parallel"] as number | undefined) ?? plan.trials.length,
      plan.trials.length,
    ),
    workDir: Deno.cwd(),
    partition: f.partition as string | undefined,
    gpusPerTrial: f["gpus-per-trial"] as number,
    time: f.time as string | undefined,
    cpusPerTrial: f["cpus-per-trial"] as number | undefined,
    jobName: `fmnist-tune-${dir.split("/").pop()}`,
  };
  await writePlan(dir, plan, "--out");
  await Deno.mkdir(`${dir}/slurm`);
  const trials = `${dir}/slurm/trials.sbatch`;
  const collect = `${dir}/slurm/collect.sbatch`;
  await writeFileAtomic(trials, arrayScript(job));
  await writeFileAtomic(collect, collectScript(job));
  log(`planned ${plan.trials.length} trials in ${dir}; scripts in ${dir}/slurm/`);
  if (dryRun) {
    log(`submit with: sbatch ${trials}`);
    log(`then: sbatch --dependency=afterany:<array job id> ${collect}`);
    return;
  }
  const arrayId = await sbatch(trials);
  const collectId = await sbatch(collect, [`--dependency=afterany:${arrayId}`]);
  await writeFileAtomic(
    `${dir}/slurm/jobs.json`,
    JSON.stringify({ array: arrayId, collect: collectId }, null, 2) + "\n",
  );
  log(
    `submitted job array ${arrayId} (${job.trials} trials, ${job.maxParallel} at once) and ` +
      `collect job ${collectId} (after the array); watch: squeue -j ${arrayId},${collectId}`,
  );
  log(`logs in ${dir}/slurm/; the ranking lands in ${dir}/results.md`);
}
