// history.csv: one row per epoch, the same fields as history.json.

export const HISTORY_COLUMNS = [
  "epoch",
  "loss",
  "acc",
  "valLoss",
  "valAcc",
  "lr",
  "epochTimeS",
] as const;

export function historyCsv(
  rows: readonly Record<(typeof HISTORY_COLUMNS)[number], number>[],
): string {
  const lines = [HISTORY_COLUMNS.join(",")];
  for (const r of rows) lines.push(HISTORY_COLUMNS.map((c) => fmt(r[c])).join(","));
  return lines.join("\n") + "\n";
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : Number.isFinite(v) ? v.toPrecision(6) : "";
}
