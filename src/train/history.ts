// The per-epoch record of a run: history.json and history.csv in the run folder (one row per
// epoch), written atomically after every epoch and read back on --resume.

import { writeFileAtomic } from "../files.ts";

export interface EpochRecord {
  epoch: number;
  loss: number;
  acc: number;
  valLoss: number;
  valAcc: number;
  lr: number;
  epochTimeS: number;
}

export const HISTORY_COLUMNS = [
  "epoch",
  "loss",
  "acc",
  "valLoss",
  "valAcc",
  "lr",
  "epochTimeS",
] as const satisfies readonly (keyof EpochRecord)[];

export function historyCsv(rows: readonly EpochRecord[]): string {
  const lines = [HISTORY_COLUMNS.join(",")];
  for (const r of rows) lines.push(HISTORY_COLUMNS.map((c) => fmt(r[c])).join(","));
  return lines.join("\n") + "\n";
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : Number.isFinite(v) ? v.toPrecision(6) : "";
}

/** The run's history.json, or [] when there is none (yet) or it is unreadable. */
export async function readHistory(outDir: string): Promise<EpochRecord[]> {
  try {
    return JSON.parse(await Deno.readTextFile(`${outDir}/history.json`));
  } catch {
    return [];
  }
}

/** Writes history.json and history.csv, each atomically. */
export async function writeHistory(outDir: string, history: EpochRecord[]): Promise<void> {
  await writeFileAtomic(`${outDir}/history.json`, JSON.stringify(history, null, 1) + "\n");
  await writeFileAtomic(`${outDir}/history.csv`, historyCsv(history));
}
