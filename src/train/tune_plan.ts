// A hyperparameter search written down as a folder, so that each trial is a unit of work any
// process can run (a Slurm array task, a shell loop, the in-process `tune`):
//
//   DIR/plan.json              format, version, search, seed, space, base config, the trial list
//   DIR/trial-000/config.json  the full training config of trial 0 (a normal run folder: the
//                              trial writes its checkpoints, history and result.json beside it)
//
// A plan is written to a temporary sibling folder and renamed into place, so a failed or
// interrupted `tune --plan` leaves no half plan behind.

import { UsageError } from "../errors.ts";
import { configFromObject, resolveConfig, type TrainConfig } from "./config.ts";
import type { SearchSpace, Trial } from "./tune.ts";

export const PLAN_FORMAT = "fmnist-tune-plan";
export const PLAN_VERSION = 1;

export interface TunePlan {
  format: typeof PLAN_FORMAT;
  version: typeof PLAN_VERSION;
  search: "grid" | "random";
  seed: number;
  space: SearchSpace;
  /** The options every trial shares; each trial overrides the searched ones. */
  base: TrainConfig;
  trials: Trial[];
  created: string;
}

/** Trial `i`'s folder: its run folder and where its result lands. */
export function trialDir(planDir: string, i: number): string {
  return `${planDir}/trial-${String(i).padStart(3, "0")}`;
}

export function trialConfig(plan: TunePlan, i: number): TrainConfig {
  return { ...plan.base, ...plan.trials[i] };
}

export function newPlan(
  search: TunePlan["search"],
  space: SearchSpace,
  base: TrainConfig,
  trials: Trial[],
): TunePlan {
  return {
    format: PLAN_FORMAT,
    version: PLAN_VERSION,
    search,
    seed: base.seed,
    space,
    base,
    trials,
    created: new Date().toISOString(),
  };
}

/**
 * Writes `plan` into `dir` (which must not exist or be empty): plan.json and one folder with a
 * config.json per trial, all at once by renaming a finished temporary folder.
 */
export async function writePlan(dir: string, plan: TunePlan, flag = "--plan"): Promise<void> {
  await assertFreeFolder(dir, flag);
  const parent = dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) || "/" : ".";
  await Deno.mkdir(parent, { recursive: true });
  const tmp = `${dir.replace(/\/+$/, "")}.plan-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.mkdir(tmp);
    const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
    for (const i of plan.trials.keys()) {
      await Deno.mkdir(trialDir(tmp, i));
      await Deno.writeTextFile(`${trialDir(tmp, i)}/config.json`, json(trialConfig(plan, i)));
    }
    await Deno.writeTextFile(`${tmp}/plan.json`, json(plan));
    // rename(2) replaces an empty folder, so `--out` may name one made beforehand.
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function assertFreeFolder(dir: string, flag: string): Promise<void> {
  let entries: string[];
  try {
    entries = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    if (e instanceof Deno.errors.NotADirectory) {
      throw new UsageError(`${flag} ${dir}: is a file, not a folder`);
    }
    throw e;
  }
  if (entries.includes("plan.json")) {
    throw new UsageError(
      `${flag} ${dir}: already holds a plan; run its trials with --trial I --plan ${dir}, ` +
        `finish it with --resume ${dir}, or choose another folder`,
    );
  }
  if (entries.length > 0) throw new UsageError(`${flag} ${dir}: folder is not empty`);
}

/** Reads and checks `dir/plan.json`; every problem is a one-line UsageError naming the file. */
export async function readPlan(dir: string, flag: string): Promise<TunePlan> {
  const path = `${dir}/plan.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`${flag} ${dir}: no plan.json there (write a plan with tune --plan)`);
    }
    throw e;
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UsageError(`${path}: not valid JSON`);
  }
  if (raw?.format !== PLAN_FORMAT) throw new UsageError(`${path}: not a tune plan`);
  if (raw.version !== PLAN_VERSION) {
    throw new UsageError(
      `${path}: plan version ${JSON.stringify(raw.version)}, this build reads version ` +
        `${PLAN_VERSION}; plan the search again with this build`,
    );
  }
  if (!Array.isArray(raw.trials) || raw.trials.length === 0) {
    throw new UsageError(`${path}: no trial list`);
  }
  const base = resolveConfig(
    configFromObject((raw.base ?? {}) as Record<string, unknown>, `${path} base`),
    {},
  );
  return { ...(raw as unknown as TunePlan), base };
}

/** `--trial I`: in range for `plan`, else a one-line UsageError. */
export function checkTrialIndex(plan: TunePlan, i: number, dir: string): void {
  if (i >= 0 && i < plan.trials.length) return;
  throw new UsageError(
    `--trial ${i}: out of range; the plan in ${dir} has ${plan.trials.length} trials ` +
      `(0..${plan.trials.length - 1})`,
  );
}

/** Trial `i`'s config.json (the plan's copy): missing or invalid is a UsageError. */
export async function readTrialConfig(dir: string, i: number): Promise<TrainConfig> {
  const path = `${trialDir(dir, i)}/config.json`;
  let raw;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`${path}: missing; the plan in ${dir} is incomplete (plan it again)`);
    }
    throw new UsageError(`${path}: not valid JSON`);
  }
  return resolveConfig(configFromObject(raw, path), {});
}
