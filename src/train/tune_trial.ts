// One trial of a plan (src/train/tune_plan.ts) as a unit of work: it trains into its own folder
// and ends by writing result.json atomically. Running it again is safe whatever happened before:
// a finished trial (result.json present) does nothing, an interrupted one (checkpoints/last, no
// result) resumes from its checkpoint and ends bit for bit where an uninterrupted run would, and
// a trial another process is running right now is refused (an flock on trial.lock, which the
// kernel drops when that process dies, so a requeued task never finds a stale lock).

import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import type { FashionMnist } from "../data/fashion_mnist.ts";
import { readCheckpoint, resolveCheckpoint } from "../model/checkpoint.ts";
import { LockTimeoutError, withFileLock } from "../shared_json_file.ts";
import { DivergedError, prepareData, runTraining } from "./loop.ts";
import type { Progress } from "./progress.ts";
import { readTrialConfig, trialDir, type TunePlan } from "./tune_plan.ts";
import type { TrialResult } from "./tune.ts";

export const RESULT_FORMAT = "fmnist-tune-result";
export const RESULT_VERSION = 1;
export const RESULT_FILE = "result.json";

export type TrialOutcome =
  | { status: "finished"; result: TrialResult; resumed: boolean }
  | { status: "finished-before"; result: TrialResult }
  | { status: "interrupted" };

export interface TrialOptions {
  progress: Progress;
  log: (m: string) => void;
  stopRequested?: () => boolean;
}

/** The result file of trial `i`, or null when it has not finished. */
export async function readTrialResult(planDir: string, i: number): Promise<TrialResult | null> {
  const path = `${trialDir(planDir, i)}/${RESULT_FILE}`;
  let raw;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`${path}: not valid JSON`);
  }
  if (raw?.format !== RESULT_FORMAT || raw.version !== RESULT_VERSION) {
    throw new UsageError(`${path}: not a version-${RESULT_VERSION} trial result`);
  }
  const { format: _f, version: _v, ...result } = raw;
  // JSON has no NaN: a failed trial stores null.
  for (const k of ["valAcc", "valLoss"] as const) result[k] ??= NaN;
  return result as TrialResult;
}

/**
 * Runs `fn` holding trial `i`'s lock (`trial.lock` in its folder, an flock the kernel drops when
 * the holder dies). A trial another process is running right now is a UsageError.
 */
export async function withTrialLock<T>(
  planDir: string,
  i: number,
  fn: () => Promise<T>,
): Promise<T> {
  const dir = trialDir(planDir, i);
  let entered = false;
  try {
    return await withFileLock(`${dir}/trial.lock`, () => {
      entered = true;
      return fn();
    }, { timeoutMs: 0 });
  } catch (e) {
    if (entered || !(e instanceof LockTimeoutError)) throw e;
    throw new UsageError(`--trial ${i}: ${dir} is being run by another process right now`);
  }
}

/**
 * Runs trial `i` of the plan in `planDir` on `data` (already loaded; tf already started); the
 * caller holds the trial's lock (withTrialLock). A diverged trial is a result too (with `error`);
 * any other failure throws and leaves no result, so running the trial again retries it.
 */
export async function runTrial(
  planDir: string,
  plan: TunePlan,
  i: number,
  data: FashionMnist,
  opts: TrialOptions,
): Promise<TrialOutcome> {
  const cfg = await readTrialConfig(planDir, i);
  const dir = trialDir(planDir, i);
  // Checked under the lock: another process may have finished it meanwhile.
  const finished = await readTrialResult(planDir, i);
  if (finished) return { status: "finished-before", result: finished };
  const resume = await lastCheckpoint(dir);
  if (resume) {
    const { epoch, step } = resume.meta.state as { epoch: number; step: number };
    opts.log(`  resuming trial ${i} from checkpoints/last at epoch ${epoch + 1}, step ${step}`);
  }
  await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
  const row: TrialResult = {
    ...plan.trials[i],
    trial: i,
    valAcc: NaN,
    valLoss: NaN,
    bestEpoch: 0,
    timeS: 0,
  };
  try {
    const r = await runTraining(cfg, prepareData(data, cfg), {
      outDir: dir,
      progress: opts.progress,
      log: () => {},
      resume: resume ?? undefined,
      stopRequested: opts.stopRequested,
    });
    r.model.dispose();
    if (r.interrupted) return { status: "interrupted" };
    const best = r.history.find((h) => h.epoch === r.bestEpoch);
    Object.assign(row, {
      valAcc: r.bestValAcc,
      valLoss: best?.valLoss ?? NaN,
      bestEpoch: r.bestEpoch,
      // Training seconds over every attempt (a resumed epoch keeps the time before the stop).
      timeS: r.history.reduce((s, h) => s + h.epochTimeS, 0),
    });
  } catch (e) {
    if (!(e instanceof DivergedError)) throw e;
    row.error = "diverged";
    opts.log(`  trial ${i} diverged: ${e.message}`);
  }
  await writeTrialResult(dir, row);
  return { status: "finished", result: row, resumed: resume !== null };
}

async function lastCheckpoint(dir: string) {
  try {
    await Deno.stat(`${dir}/checkpoints/last/checkpoint.json`);
  } catch {
    try {
      await Deno.stat(`${dir}/checkpoints/last.old/checkpoint.json`);
    } catch {
      return null;
    }
  }
  return await readCheckpoint((await resolveCheckpoint(dir, "last")).dir);
}

async function writeTrialResult(dir: string, row: TrialResult): Promise<void> {
  const nullNaN = (_k: string, v: unknown) => (typeof v === "number" && Number.isNaN(v) ? null : v);
  const file = { format: RESULT_FORMAT, version: RESULT_VERSION, ...row };
  await writeFileAtomic(`${dir}/${RESULT_FILE}`, JSON.stringify(file, nullNaN, 2) + "\n");
}
