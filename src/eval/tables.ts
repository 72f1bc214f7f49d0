// Plain-text tables for the terminal: per-class metrics and the most confused pairs.

import type { ClassificationMetrics, Confusion } from "./metrics.ts";

export type Align = "left" | "right";

/** Column-aligned text table (header, rule, rows). Numbers are usually right-aligned. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[] = headers.map((_, i) => (i === 0 ? "left" : "right")),
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (align[i] === "left" ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ").trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join(
    "\n",
  );
}

const f3 = (v: number) => v.toFixed(3);

/** The rows of the per-class table (shared by the terminal and the HTML report). */
export function perClassRows(m: ClassificationMetrics): string[][] {
  const rows = m.perClass.map((c) => [
    c.name,
    f3(c.precision),
    f3(c.recall),
    f3(c.f1),
    String(c.support),
  ]);
  rows.push(["macro avg", f3(m.macro.precision), f3(m.macro.recall), f3(m.macro.f1), String(m.n)]);
  rows.push([
    "weighted avg",
    f3(m.weighted.precision),
    f3(m.weighted.recall),
    f3(m.weighted.f1),
    String(m.n),
  ]);
  return rows;
}

export const PER_CLASS_HEADERS = ["class", "precision", "recall", "f1", "support"];
export const CONFUSION_HEADERS = ["true", "predicted as", "count", "% of true class"];

export function perClassTable(m: ClassificationMetrics): string {
  return formatTable(PER_CLASS_HEADERS, perClassRows(m));
}

export function confusionRows(list: readonly Confusion[]): string[][] {
  return list.map((c) => [
    c.trueName,
    c.predictedName,
    String(c.count),
    (100 * c.fractionOfTrue).toFixed(1),
  ]);
}

export function confusionsTable(list: readonly Confusion[]): string {
  if (list.length === 0) return "(no misclassifications)";
  return formatTable(CONFUSION_HEADERS, confusionRows(list), ["left", "left", "right", "right"]);
}
