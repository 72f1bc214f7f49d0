// `tune --collect DIR`: ranks whatever trial results a plan folder holds into results.csv,
// results.md and best-config.json, and says which trials are missing (not run, still running,
// or crashed without a result) and which failed (diverged).

import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { rankResults, resultsCsv, resultsMarkdown, type TrialResult } from "./tune.ts";
import { readTrialConfig, type TunePlan } from "./tune_plan.ts";
import { readTrialResult } from "./tune_trial.ts";

export interface Collected {
  ranked: TrialResult[];
  /** Trial indices without a result. */
  missing: number[];
  /** Trials whose result records a failure. */
  failed: TrialResult[];
}

/** Reads every trial's result (checking each trial's config exists: an incomplete plan is an error). */
export async function collectResults(dir: string, plan: TunePlan): Promise<Collected> {
  const results: TrialResult[] = [];
  const missing: number[] = [];
  for (const i of plan.trials.keys()) {
    await readTrialConfig(dir, i);
    const r = await readTrialResult(dir, i);
    if (r) results.push(r);
    else missing.push(i);
  }
  return { ranked: rankResults(results), missing, failed: results.filter((r) => r.error) };
}

/**
 * Writes the three result files (atomically each). best-config.json holds the best trial's
 * hyperparameters for `train --config`; it is written only when some trial succeeded.
 */
export async function writeResults(dir: string, plan: TunePlan, c: Collected): Promise<void> {
  if (c.ranked.length === 0) {
    throw new UsageError(
      `--collect ${dir}: no trial has finished yet (missing: ${c.missing.join(", ")})`,
    );
  }
  const base = plan.base;
  const title = `Tuning ${base.model} (${base.limit || "all"} training images, seed ${base.seed})`;
  const notes = [
    c.missing.length ? `Missing (no result yet): trials ${c.missing.join(", ")}.` : "",
    c.failed.length ? `Failed: trials ${c.failed.map((r) => r.trial).join(", ")}.` : "",
  ].filter((s) => s !== "");
  const md = resultsMarkdown(c.ranked, title) + (notes.length ? `\n${notes.join("\n")}\n` : "");
  await writeFileAtomic(`${dir}/results.csv`, resultsCsv(c.ranked));
  await writeFileAtomic(`${dir}/results.md`, md);
  const best = c.ranked[0];
  if (best.error) return;
  // The hyperparameters only: data folder, backend and the budget (--limit) stay the caller's.
  const bestConfig = {
    model: base.model,
    ops: base.ops,
    lr: best.lr,
    batch: best.batch,
    dropout: best.dropout,
    weightDecay: best.weightDecay,
    epochs: best.epochs,
    labelSmoothing: base.labelSmoothing,
    augment: base.augment,
    schedule: base.schedule,
    patience: base.patience,
  };
  await writeFileAtomic(`${dir}/best-config.json`, JSON.stringify(bestConfig, null, 2) + "\n");
}

/** One line per problem for the log: which trials are missing and which failed. */
export function describeGaps(dir: string, c: Collected): string[] {
  const lines: string[] = [];
  if (c.missing.length) {
    lines.push(
      `missing: trial(s) ${c.missing.join(", ")} have no result yet ` +
        `(run one with: tune --trial I --plan ${dir})`,
    );
  }
  for (const r of c.failed) lines.push(`failed: trial ${r.trial} (${r.error})`);
  return lines;
}
