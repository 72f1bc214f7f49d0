// Hyperparameter search: the trial list (grid or seeded random sample), ranking and the result
// tables. The command (src/cmd/tune.ts) runs each trial through the normal training loop.

import { Rng } from "../random.ts";
import type { TrainConfig } from "./config.ts";

export interface SearchSpace {
  lr: number[];
  batch: number[];
  dropout: number[];
  weightDecay: number[];
  epochs: number[];
}

export type Trial = Pick<TrainConfig, keyof SearchSpace>;

export interface TrialResult extends Trial {
  trial: number;
  valAcc: number;
  valLoss: number;
  bestEpoch: number;
  timeS: number;
  /** Set when the trial failed (diverged): it ranks last. */
  error?: string;
}

const KEYS: (keyof SearchSpace)[] = ["lr", "batch", "dropout", "weightDecay", "epochs"];

/** Every combination, in a fixed order (first key varies slowest). */
export function gridTrials(space: SearchSpace): Trial[] {
  let out: Partial<Trial>[] = [{}];
  for (const key of KEYS) out = out.flatMap((t) => space[key].map((v) => ({ ...t, [key]: v })));
  return out as Trial[];
}

/**
 * `n` distinct combinations drawn with a seeded RNG (fewer when the grid is smaller). Grid
 * search with a trial limit takes a seeded random subset too, so the limit does not just cut the
 * first learning rate's rows.
 */
export function randomTrials(space: SearchSpace, n: number, seed: number): Trial[] {
  const all = gridTrials(space);
  const rng = new Rng(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, Math.min(n, all.length));
}

/** Best validation accuracy first; ties by lower validation loss; failed trials last. */
export function rankResults(results: TrialResult[]): TrialResult[] {
  const score = (r: TrialResult) => (r.error || Number.isNaN(r.valAcc) ? -Infinity : r.valAcc);
  return [...results].sort((a, b) => score(b) - score(a) || a.valLoss - b.valLoss);
}

const COLUMNS = [
  "rank",
  "trial",
  "lr",
  "batch",
  "dropout",
  "weightDecay",
  "epochs",
  "valAcc",
  "valLoss",
  "bestEpoch",
  "timeS",
  "error",
] as const;

function cell(r: TrialResult, rank: number, c: (typeof COLUMNS)[number]): string {
  if (c === "rank") return String(rank);
  const v = r[c];
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  if (c === "valAcc" || c === "valLoss") return Number.isFinite(v) ? v.toFixed(4) : "";
  if (c === "timeS") return v.toFixed(1);
  return String(v);
}

export function resultsCsv(ranked: TrialResult[]): string {
  const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return [
    COLUMNS.join(","),
    ...ranked.map((r, i) => COLUMNS.map((c) => quote(cell(r, i + 1, c))).join(",")),
  ].join("\n") + "\n";
}

export function resultsMarkdown(ranked: TrialResult[], title: string): string {
  const cols = COLUMNS.filter((c) => c !== "error" || ranked.some((r) => r.error));
  return [
    `# ${title}`,
    "",
    "Ranked by validation accuracy (best first).",
    "",
    `| ${cols.join(" | ")} |`,
    `| ${cols.map(() => "---").join(" | ")} |`,
    ...ranked.map((r, i) =>
      `| ${cols.map((c) => cell(r, i + 1, c).replace(/\|/g, "/")).join(" | ")} |`
    ),
    "",
  ].join("\n");
}
