// Benchmark results as data (the JSON document), as a terminal table, as markdown, and compared
// with an earlier JSON document (ratio per case).

import type { AdapterReport } from "../src/tf/setup.ts";
import type { KernelCase } from "./kernels_suite.ts";
import type { ViewCase } from "./conv_views.ts";
import type { RooflineResult } from "./roofline.ts";
import type { Clock } from "./timing.ts";
import { EPOCH_IMAGES, type TrainCase } from "./train_types.ts";
import type { AutotuneResult } from "./autotune_suite.ts";
import { SOFTWARE_FWD_GFLOPS_TARGET } from "./kernels_suite.ts";
import { describeCpuPeak } from "./cpu_peak.ts";

export const SCHEMA = "fmnist-bench/1";

export interface BenchDocument {
  schema: typeof SCHEMA;
  /** ISO 8601, UTC. */
  date: string;
  /** The command line that reproduces the run. */
  command: string;
  /** `git describe --always --dirty` of the working tree, or null outside git. */
  revision: string | null;
  adapter: AdapterReport;
  /** How times were taken on this adapter (see bench/timing.ts). */
  clock: Clock;
  host: { os: string; arch: string; cpus: number; deno: string };
  options: { suites: string[]; repeats: number; warmup: number; batches: number[]; quick: boolean };
  roofline: RooflineResult | null;
  kernels: KernelCase[] | null;
  /** Kernels suite: each conv view alone, with the configuration the dispatch uses. */
  views?: ViewCase[] | null;
  train: TrainCase[] | null;
  /** `--suite autotune`: the tuned tile config per (layer, view, batch bucket). */
  autotune?: AutotuneResult | null;
  /** Tile config id per conv shape key (view:kernel:...:batch bucket) that the run dispatched. */
  tileConfigs?: Record<string, string>;
}

/** The source revision being measured ("abc1234", "abc1234-dirty"), or null without git. */
export async function sourceRevision(): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", {
      args: ["describe", "--always", "--dirty"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.code === 0 ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

export function hostInfo(): BenchDocument["host"] {
  return {
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers

function fmt(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "-";
  const abs = Math.abs(n);
  if (abs !== 0 && abs < 0.01) return n.toExponential(1);
  return n.toFixed(abs >= 1000 ? 0 : digits);
}

function pct(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${fmt(n, 0)}%`;
}

/** Like pct, with one decimal under 10% (software kernels reach a few percent of the CPU). */
function pctFine(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${fmt(n, n < 10 ? 1 : 0)}%`;
}

/** A right-aligned, space-separated text table (first column left-aligned). */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function markdownTable(header: string[], rows: string[][]): string {
  const sep = header.map((_, i) => i === 0 ? "---" : "---:");
  return [header, sep, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

// ---------------------------------------------------------------------------------------------
// Tables shared by the terminal and markdown outputs

interface Table {
  title: string;
  header: string[];
  rows: string[][];
  notes: string[];
}

function rooflineTable(r: RooflineResult): Table {
  return {
    title: "Roofline (our kernels; best of the repeats is the ceiling)",
    header: ["kernel", "size", "median ms", "min ms", "max ms", "ceiling"],
    rows: [
      [
        "roofline_copy",
        `${fmt(r.copy.bytes / 2 ** 20, 0)} MiB r+w`,
        fmt(r.copy.stats.medianMs),
        fmt(r.copy.stats.minMs),
        fmt(r.copy.stats.maxMs),
        `${fmt(r.copy.gbPerS)} GB/s`,
      ],
      [
        "roofline_matmul",
        `${r.matmul.m}x${r.matmul.k}x${r.matmul.n}`,
        fmt(r.matmul.stats.medianMs),
        fmt(r.matmul.stats.minMs),
        fmt(r.matmul.stats.maxMs),
        `${fmt(r.matmul.gflopPerS)} GFLOP/s`,
      ],
    ],
    notes: r.cpu ? describeCpuPeak(r.cpu) : [],
  };
}

function kernelsTable(cases: KernelCase[]): Table {
  const rows = cases.map((c) => [
    `${c.mode} ${c.label}`,
    String(c.batch),
    fmt(c.fused?.stats.medianMs),
    fmt(c.stock?.stats.medianMs),
    c.speedupVsStock === null ? "-" : `${fmt(c.speedupVsStock)}x`,
    `${c.target}x ${c.targetMet ? "ok" : "MISS"}`,
    fmt(c.cpu?.stats.medianMs),
    c.speedupVsCpu === null ? "-" : `${fmt(c.speedupVsCpu)}x`,
    fmt(c.fused?.gflopPerS),
    fmt(c.fused?.gbPerS),
    pct(c.fused?.pctPeakFlops),
    pct(c.fused?.pctPeakBandwidth),
    pctFine(c.fused?.pctCpuPeak),
  ]);
  const notes: string[] = [];
  const fwd128 = cases.filter((c) => c.mode === "train-fwd" && c.batch === 128 && c.fused);
  if (fwd128.length > 0) {
    // The model-input layer (Cin 1, K = 9) is memory-bound: the target is about the others.
    const list = (cs: KernelCase[]) => cs.map((c) => fmt(c.fused!.gflopPerS)).join(", ");
    const hidden = fwd128.filter((c) => c.layer.cin > 1);
    const input = fwd128.filter((c) => c.layer.cin === 1);
    notes.push(
      `fused train-fwd at batch 128: ${list(hidden)} GFLOP/s on the Cin > 1 layers ` +
        `(target on a software adapter: >= ${SOFTWARE_FWD_GFLOPS_TARGET})` +
        (input.length ? `; ${list(input)} on the Cin = 1 input layer` : ""),
    );
  }
  notes.push(
    "fused/stock ms: median; speed-up = stock / fused; cpu = stock ops on the tfjs CPU backend " +
      "(host clock, vs the fused op's host clock); GFLOP/s, GB/s and % of roofline are the fused op's.",
  );
  if (cases.some((c) => c.fused?.pctCpuPeak)) {
    notes.push(
      "%CPU FMA: the fused op's GFLOP/s as a share of the host CPU's FMA peak (the roofline " +
        "table's notes say how that peak was derived; a software adapter runs on those cores).",
    );
  }
  const configs = new Map<string, string>();
  for (const c of cases) {
    if (c.tileConfigs?.length) configs.set(`${c.label} b${c.batch}`, c.tileConfigs.join(", "));
  }
  for (const [layer, ids] of configs) notes.push(`tile configs ${layer}: ${ids}`);
  for (const c of cases) for (const e of c.errors) notes.push(`FAILED ${c.id}: ${e}`);
  return {
    title: "Kernels: fused conv+BN+ReLU vs stock tfjs ops",
    header: [
      "case",
      "batch",
      "fused ms",
      "stock ms",
      "speed-up",
      "target",
      "cpu ms",
      "vs cpu",
      "GFLOP/s",
      "GB/s",
      "%peak FLOP",
      "%peak BW",
      "%CPU FMA",
    ],
    rows,
    notes,
  };
}

function viewsTable(cases: ViewCase[]): Table {
  return {
    title: "Conv views alone (the dispatch's tile configuration)",
    header: ["layer", "batch", "view", "config", "median ms", "GFLOP/s", "%CPU FMA"],
    rows: cases.map((c) => [
      c.layer,
      String(c.batch),
      c.view,
      c.config,
      fmt(c.medianMs),
      fmt(c.gflopPerS),
      pctFine(c.pctCpuPeak),
    ]),
    notes: [
      `clock: ${cases[0].clock}; fwd timed inside the fused conv + BN + ReLU forward, bwdFilter ` +
      "inside its parameter gradients (as the autotuner times them); %CPU FMA: share of the host " +
      "CPU's FMA peak (roofline notes), software adapters only.",
    ],
  };
}

function trainTable(cases: TrainCase[]): Table {
  const hasSubset = cases.some((c) => c.subset);
  const hasCapture = cases.some((c) => c.captured !== undefined);
  const refused = cases.filter((c) => c.captured === null && c.captureStatus);
  const rows = cases.map((c) => [
    c.variant.id,
    String(c.batch),
    fmt(c.stats.medianMs),
    fmt(c.imagesPerS, 1),
    c.speedupVsStock === null ? "-" : `${fmt(c.speedupVsStock)}x`,
    fmt(c.epochSExtrapolated, 1),
    c.dispatchesPerStep === null || c.dispatchesPerStep === undefined
      ? "-"
      : fmt(c.dispatchesPerStep, 0),
    c.hostIssueMs === undefined ? "-" : `${fmt(c.hostIssueMs)} / ${fmt(c.wallMs)}`,
    c.mainCpuMs === undefined ? "-" : fmt(c.mainCpuMs),
    c.mainCpuPerDispatchMs === undefined || c.mainCpuPerDispatchMs === null
      ? "-"
      : fmt(c.mainCpuPerDispatchMs, 3),
    ...(hasCapture
      ? [
        c.captured
          ? `${fmt(c.captured.hostIssueMs)} / ${fmt(c.captured.wallMs)}`
          : c.captureStatus
          ? "not captured"
          : "-",
        c.captured
          ? `${fmt(c.captured.mainCpuMs)} (${fmt(c.captured.mainCpuPerDispatchMs, 3)})`
          : "-",
      ]
      : []),
    ...(hasSubset
      ? [
        c.subset ? `${c.subset.images}: ${fmt(c.subset.seconds, 1)}` : "-",
        c.subset ? fmt(c.subset.epochSExtrapolated, 1) : "-",
      ]
      : []),
  ]);
  return {
    title: "Training step (forward + backward + Adam)",
    header: [
      "model",
      "batch",
      "step ms",
      "images/s",
      "vs stock",
      "epoch s (extrap.)",
      "dispatches",
      "host issue / wall ms",
      "main-thread CPU ms",
      "CPU ms / dispatch",
      ...(hasCapture ? ["captured issue / wall ms", "captured CPU ms (/ dispatch)"] : []),
      ...(hasSubset ? ["subset imgs: s", "epoch s (subset)"] : []),
    ],
    rows,
    notes: [
      `epoch = ${EPOCH_IMAGES} training images (default split); extrapolated from the step ` +
      "time (no data loading); " +
      "the subset pass feeds real images through the data pipeline.",
      "dispatches: WebGPU compute dispatches per step; host issue: time for the step call to " +
      "return (all work encoded and submitted), wall: until the loss is read back (same runs); " +
      "main-thread CPU: the JavaScript thread's CPU time per step, call to read-back (lavapipe's " +
      "worker threads excluded), and per dispatch. " +
      `Adam: ${[...new Set(cases.map((c) => c.optimizer ?? "tfjs"))].join(", ")}.`,
      ...(hasCapture
        ? [
          "captured: the same figures with the step recorded and replayed (train --capture " +
          "on, src/tf/step_capture.ts), the same dispatches without tfjs's per-op host code.",
        ]
        : []),
      ...refused.map((c) => `${c.id}: ${c.captureStatus}`),
    ],
  };
}

/** The tile config chosen per problem and what each candidate took (fastest marked *). */
function autotuneTable(r: AutotuneResult): Table {
  const rows = r.rows.map((row) => {
    const best = row.choice;
    const cands = Object.entries(row.timings).map(([id, ms]) =>
      `${id === best ? "*" : ""}${id.replace(`${row.view}.`, "")} ${
        ms === null ? "failed" : fmt(ms)
      }`
    );
    return [
      `${row.layers[0]} ${row.shape}${row.layers.length > 1 ? ` (+${row.layers.length - 1})` : ""}`,
      row.view,
      row.work === "infer" ? `${row.batch} (infer)` : String(row.batch),
      best,
      row.source,
      cands.length ? cands.join(", ") : "-",
    ];
  });
  const notes = [
    `adapter kind ${r.adapterKind}; ${
      r.setting === "off"
        ? "tuning off (built-in defaults)"
        : `cache ${r.cachePath ?? "in memory only"}`
    }; ` +
    `${fmt(r.seconds, 1)} s; a choice holds for its batch bucket (power of two); ms: median ` +
    `GPU time of the op's tfjs kernel per candidate (${
      r.rows.find((x) => x.clock)?.clock ?? "-"
    }).`,
  ];
  for (const row of r.rows) {
    for (const [id, e] of Object.entries(row.errors)) notes.push(`FAILED ${row.key} ${id}: ${e}`);
  }
  return {
    title: "Autotune: tile config per conv layer, view and batch",
    header: ["layer", "view", "batch", "choice", "source", "candidates (ms)"],
    rows,
    notes,
  };
}

function tileConfigTable(configs: Record<string, string>): Table {
  return {
    title: "Tile configs the run dispatched (conv shape key -> config)",
    header: ["shape key", "config"],
    rows: Object.entries(configs).map(([k, id]) => [k, id]),
    notes: [],
  };
}

function tables(doc: BenchDocument): Table[] {
  const out: Table[] = [];
  if (doc.autotune) out.push(autotuneTable(doc.autotune));
  if (doc.roofline) out.push(rooflineTable(doc.roofline));
  if (doc.kernels) out.push(kernelsTable(doc.kernels));
  if (doc.views?.length) out.push(viewsTable(doc.views));
  if (doc.train) out.push(trainTable(doc.train));
  if (doc.tileConfigs && Object.keys(doc.tileConfigs).length > 0) {
    out.push(tileConfigTable(doc.tileConfigs));
  }
  return out;
}

function headline(doc: BenchDocument): string {
  // driver: the Mesa release (documents written before it was recorded lack it).
  return `adapter: ${doc.adapter.backend} on ${doc.adapter.description}` +
    `${doc.adapter.driver ? `, ${doc.adapter.driver}` : ""}` +
    `${doc.adapter.isSoftware ? " [software adapter]" : ""}; clock: ${doc.clock}; ` +
    `${doc.date}; ${doc.host.cpus} CPUs`;
}

export function renderText(doc: BenchDocument): string {
  const parts = [headline(doc)];
  for (const t of tables(doc)) {
    parts.push("", t.title, textTable(t.header, t.rows), ...t.notes.map((n) => `  ${n}`));
  }
  return parts.join("\n");
}

export function renderMarkdown(doc: BenchDocument): string {
  const parts = [
    `Adapter: **${doc.adapter.description}${doc.adapter.driver ? `, ${doc.adapter.driver}` : ""}**${
      doc.adapter.isSoftware ? " (software adapter: CPU figures, not GPU ones)" : ""
    }, clock: ${doc.clock}, date: ${doc.date}, host: ${doc.host.os}/${doc.host.arch}, ` +
    `${doc.host.cpus} CPUs, Deno ${doc.host.deno}.`,
    "",
    `Reproduce: \`${doc.command}\`${doc.revision ? ` (source ${doc.revision})` : ""}`,
  ];
  for (const t of tables(doc)) {
    parts.push("", `**${t.title}**`, "", markdownTable(t.header, t.rows));
    if (t.notes.length) parts.push("", ...t.notes.map((n) => `- ${n}`));
  }
  return parts.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Comparison with an earlier run

/** Median time of every case in a document, keyed by a stable case name. */
export function caseTimes(doc: BenchDocument): Map<string, number> {
  const m = new Map<string, number>();
  if (doc.roofline) {
    m.set("roofline copy", doc.roofline.copy.stats.medianMs);
    m.set("roofline matmul", doc.roofline.matmul.stats.medianMs);
  }
  for (const c of doc.kernels ?? []) {
    if (c.fused) m.set(`kernels ${c.id} fused`, c.fused.stats.medianMs);
    if (c.stock) m.set(`kernels ${c.id} stock`, c.stock.stats.medianMs);
    if (c.cpu) m.set(`kernels ${c.id} cpu`, c.cpu.stats.medianMs);
  }
  for (const c of doc.train ?? []) m.set(`train ${c.id}`, c.stats.medianMs);
  return m;
}

export interface ComparisonRow {
  name: string;
  oldMs: number;
  newMs: number;
  /** old / new: > 1 means the new run is faster. */
  ratio: number;
}

/** Cases present in both documents, in the new document's order. */
export function compareDocuments(oldDoc: BenchDocument, newDoc: BenchDocument): ComparisonRow[] {
  const old = caseTimes(oldDoc);
  const rows: ComparisonRow[] = [];
  for (const [name, newMs] of caseTimes(newDoc)) {
    const oldMs = old.get(name);
    if (oldMs !== undefined) rows.push({ name, oldMs, newMs, ratio: oldMs / newMs });
  }
  return rows;
}

export function renderComparison(
  rows: ComparisonRow[],
  oldDoc: BenchDocument,
  newDoc: BenchDocument,
): string {
  const warn = oldDoc.adapter.description !== newDoc.adapter.description ||
      oldDoc.clock !== newDoc.clock
    ? [
      `  note: different adapter/clock (old: ${oldDoc.adapter.description}, ${oldDoc.clock}; ` +
      `new: ${newDoc.adapter.description}, ${newDoc.clock})`,
    ]
    : [];
  if (rows.length === 0) {
    return ["Comparison: no case in common with the old run", ...warn].join("\n");
  }
  const table = textTable(
    ["case", "old ms", "new ms", "old/new"],
    rows.map((r) => [r.name, fmt(r.oldMs), fmt(r.newMs), `${fmt(r.ratio)}x`]),
  );
  return [`Comparison with ${oldDoc.date} (old/new > 1: faster now)`, table, ...warn].join("\n");
}

/** Parses and sanity-checks a bench JSON file; throws a one-line message naming the file. */
export function parseBenchDocument(text: string, path: string): BenchDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const d = doc as Partial<BenchDocument>;
  if (d === null || typeof d !== "object" || d.schema !== SCHEMA) {
    throw new Error(`${path}: not a bench result (expected "schema": "${SCHEMA}")`);
  }
  return d as BenchDocument;
}
