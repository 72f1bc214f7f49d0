// report.html: one self-contained page (no external files or network) with the run's config, the
// test metrics, the pictures (SVG embedded as data URLs) and "what to try next".
//
// A small inline script records on <body data-images-ok="loaded/total"> how many pictures decoded;
// the report test reads it from headless Chromium, and a reader sees a warning if any failed.

import type { ClassificationMetrics } from "./metrics.ts";
import { CONFUSION_HEADERS, confusionRows, PER_CLASS_HEADERS, perClassRows } from "./tables.ts";
import { dataUrl } from "./render.ts";

export interface ReportChart {
  id: string;
  title: string;
  svg: string;
  caption?: string;
}

export interface ReportInput {
  title: string;
  /** Facts shown at the top: run folder, checkpoint, backend, samples, timing... */
  facts: Record<string, string>;
  config: Record<string, unknown>;
  metrics: ClassificationMetrics;
  charts: readonly ReportChart[];
  suggestions: readonly string[];
  /** How many of the top confusions to list. */
  topConfusions?: number;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** First column as row headers; columns listed in `textColumns` are left-aligned. */
function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  textColumns: readonly number[] = [],
): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const cell = (c: string, i: number) =>
    i === 0
      ? `<th>${escapeHtml(c)}</th>`
      : `<td${textColumns.includes(i) ? ' class="text"' : ""}>${escapeHtml(c)}</td>`;
  const body = rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function configValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

const CSS = `
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 2rem auto;
  max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { padding: .2rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, thead th, td.text { text-align: left; }
.headline { font-size: 1.2rem; } .headline b { font-size: 1.6rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
#image-warning { display: none; color: #b00; font-weight: bold; }
`;

const IMAGE_CHECK = `
addEventListener("load", () => {
  const images = [...document.images];
  const ok = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.imagesOk = ok + "/" + images.length;
  if (ok < images.length) document.getElementById("image-warning").style.display = "block";
});
`;

export function buildReport(r: ReportInput): string {
  const m = r.metrics;
  const facts = table(["", ""], Object.entries(r.facts), [1]).replace(/<thead>.*?<\/thead>/, "");
  const config = Object.keys(r.config).length === 0
    ? "<p>(no config.json)</p>"
    : table(["key", "value"], Object.entries(r.config).map(([k, v]) => [k, configValue(v)]), [1]);
  const prob = m.probabilities;
  const headline = [
    `accuracy <b>${(100 * m.accuracy).toFixed(2)}%</b>`,
    `macro F1 ${m.macro.f1.toFixed(4)}`,
    ...(prob
      ? [`top-3 ${(100 * prob.top3Accuracy).toFixed(2)}%`, `log loss ${prob.logLoss.toFixed(4)}`]
      : []),
    `${m.n} test images`,
  ].join(" &middot; ");
  const confusions = m.topConfusions.slice(0, r.topConfusions ?? 10);
  const figures = r.charts.map((c) =>
    `<figure id="${escapeHtml(c.id)}"><h2>${escapeHtml(c.title)}</h2>` +
    `<img alt="${escapeHtml(c.title)}" src="${dataUrl("image/svg+xml", c.svg)}">` +
    (c.caption ? `<figcaption>${escapeHtml(c.caption)}</figcaption>` : "") + `</figure>`
  ).join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(r.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(r.title)}</h1>
<p id="image-warning">Some pictures in this report failed to load.</p>
<p class="headline">${headline}</p>
${facts}
<h2>What to try next</h2>
<ul>
${r.suggestions.map((s) => `<li>${escapeHtml(s)}</li>`).join("\n")}
</ul>
<h2>Per-class metrics</h2>
${table(PER_CLASS_HEADERS, perClassRows(m))}
<h2>Most confused pairs</h2>
${
    confusions.length === 0
      ? "<p>No misclassifications.</p>"
      : table(CONFUSION_HEADERS, confusionRows(confusions), [1])
  }
${figures}
<h2>Config</h2>
${config}
<script>${IMAGE_CHECK}</script>
</body>
</html>
`;
}
