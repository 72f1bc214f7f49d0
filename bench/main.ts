// `deno task bench`: roofline, kernel and training benchmarks with a terminal table, a JSON
// document (every figure + adapter + date + command), a markdown summary and a comparison
// with an earlier JSON run.

import * as tf from "@tensorflow/tfjs-core";
import { type Flags, helpText, parseFlags, UsageError } from "../src/cli/args.ts";
import { type AdapterReport, startTf } from "../src/tf/setup.ts";
import { ENHANCED_LAYERS, MODES, QUICK_LAYERS, runKernelSuite } from "./kernels_suite.ts";
import type { KernelMode } from "./work.ts";
import {
  type BenchDocument,
  compareDocuments,
  hostInfo,
  parseBenchDocument,
  renderComparison,
  renderMarkdown,
  renderText,
  SCHEMA,
  sourceRevision,
  writeTextFileAtomic,
} from "./report.ts";
import { rooflineSizes, runRoofline } from "./roofline.ts";
import { resolveClock, type TimingOptions } from "./timing.ts";
import { OPTIMIZER_KINDS, type OptimizerKind } from "../src/train/optimizer.ts";

const SUITES = ["kernels", "train", "roofline", "all"] as const;

export const BENCH_FLAGS = {
  suite: { type: "enum", choices: SUITES, default: "all", help: "which benchmarks to run" },
  json: { type: "string", help: "write every figure as JSON to this file" },
  compare: { type: "string", help: "an earlier --json file: print old/new per case" },
  markdown: { type: "string", help: "write the summary tables as markdown to this file" },
  repeats: {
    type: "int",
    min: 1,
    max: 1000,
    help: "timed runs per case (default 5; 3 on a software adapter; --quick 1)",
  },
  warmup: {
    type: "int",
    min: 0,
    max: 100,
    help: "untimed runs per case (default 2; 1 on a software adapter or with --quick)",
  },
  batches: {
    type: "list",
    help: "batch sizes, e.g. 32,128,256 (default kernels 32,128,256, train 32..512; " +
      "on a software adapter kernels 32,128, train 32,64)",
  },
  modes: {
    type: "list",
    help: "kernels suite: subset of train-fwd,train-fwd-bwd,infer (default all)",
  },
  quick: { type: "bool", help: "tiny shapes, one repeat: checks that everything runs" },
  limit: {
    type: "int",
    min: 0,
    default: 0,
    help: "train suite: also time a real pass over this many training images",
  },
  data: { type: "string", help: "Fashion-MNIST folder for --limit" },
  optimizer: {
    type: "enum",
    choices: OPTIMIZER_KINDS,
    default: "fused",
    help: "train suite: Adam as one fused kernel, or tf.train.adam (tfjs)",
  },
  "no-cpu": { type: "bool", help: "kernels suite: skip the CPU-backend comparison" },
  backend: { type: "enum", choices: ["webgpu", "cpu"], default: "webgpu", help: "tfjs backend" },
  adapter: {
    type: "enum",
    choices: ["any", "hardware"],
    default: "any",
    help: "hardware: refuse software adapters such as llvmpipe",
  },
} as const;

type BenchFlags = Flags<typeof BENCH_FLAGS>;

const USAGE = "deno task bench [--suite kernels|train|roofline|all] [--json FILE] " +
  "[--compare OLD.json] [--markdown FILE] [--quick]";

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, BENCH_FLAGS);
  if (f.help) {
    console.log(helpText(USAGE, BENCH_FLAGS, "Benchmarks: roofline, fused kernels, training."));
    return;
  }
  // Read the comparison file first: a typo should not cost a whole benchmark run.
  const oldDoc = f.compare ? await readDocument(f.compare) : null;
  const doc = await runBench(f, argv);
  console.log("\n" + renderText(doc));
  if (oldDoc) console.log("\n" + renderComparison(compareDocuments(oldDoc, doc), oldDoc, doc));
  if (f.json) {
    await writeTextFileAtomic(f.json, JSON.stringify(doc, null, 2) + "\n");
    console.log(`\nwrote ${f.json}`);
  }
  if (f.markdown) {
    await writeTextFileAtomic(f.markdown, renderMarkdown(doc));
    console.log(`wrote ${f.markdown}`);
  }
}

async function readDocument(path: string): Promise<BenchDocument> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`--compare ${path}: ${(e as Error).message.split(":")[0]}`);
  }
  try {
    return parseBenchDocument(text, path);
  } catch (e) {
    throw new UsageError(`--compare ${(e as Error).message}`);
  }
}

/** Adapter selection plus the start-up line every command prints. */
export async function startBackend(
  command: string,
  backend: "webgpu" | "cpu",
  policy: "any" | "hardware",
): Promise<AdapterReport> {
  const adapter = await startTf(command, backend, policy);
  // Tiny tensors would otherwise run on the CPU backend and escape the GPU clock.
  if (backend === "webgpu") tf.env().set("WEBGPU_CPU_FORWARD", false);
  return adapter;
}

function parseBatches(list: string[]): number[] | null {
  if (list.length === 0) return null;
  return list.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`--batches must be positive integers, got "${s}"`);
    }
    return n;
  });
}

function parseModes(list: string[]): KernelMode[] {
  if (list.length === 0) return MODES;
  for (const m of list) {
    if (!MODES.includes(m as KernelMode)) {
      throw new UsageError(`--modes must be a subset of ${MODES.join(",")}, got "${m}"`);
    }
  }
  return list as KernelMode[];
}

/** Runs the selected suites; returns the whole result document. */
export async function runBench(f: BenchFlags, argv: string[]): Promise<BenchDocument> {
  const suites = f.suite === "all" ? ["roofline", "kernels", "train"] : [f.suite];
  const batchFlag = parseBatches(f.batches);
  const modes = parseModes(f.modes);
  if (f.backend === "cpu" && suites.includes("roofline")) {
    if (f.suite === "roofline") {
      throw new UsageError("--suite roofline measures WebGPU kernels: use --backend webgpu");
    }
    suites.splice(suites.indexOf("roofline"), 1);
  }
  const adapter = await startBackend("bench", f.backend as "webgpu" | "cpu", f.adapter as "any");
  // llvmpipe runs a 128-image backward pass in tens of seconds: fewer runs by default there.
  const slow = adapter.isSoftware;
  const timing: TimingOptions = {
    warmup: f.warmup ?? (f.quick || slow ? 1 : 2),
    repeats: f.repeats ?? (f.quick ? 1 : slow ? 3 : 5),
  };
  const log = (m: string) => console.log(m);
  const doc: BenchDocument = {
    schema: SCHEMA,
    date: new Date().toISOString(),
    command: ["deno task bench", ...argv].join(" "),
    revision: await sourceRevision(),
    adapter,
    clock: resolveClock(),
    host: hostInfo(),
    options: {
      suites,
      repeats: timing.repeats,
      warmup: timing.warmup,
      batches: batchFlag ?? [],
      quick: f.quick,
    },
    roofline: null,
    kernels: null,
    train: null,
  };
  console.log(`bench: clock ${doc.clock}; suites ${suites.join(", ")}`);

  if (suites.includes("roofline") || (suites.includes("kernels") && f.backend === "webgpu")) {
    log("roofline ...");
    doc.roofline = await runRoofline(rooflineSizes(f.quick), timing);
  }
  if (suites.includes("kernels")) {
    log("kernels ...");
    const batches = batchFlag ?? (f.quick ? [2] : slow ? [32, 128] : [32, 128, 256]);
    doc.kernels = await runKernelSuite({
      layers: f.quick ? QUICK_LAYERS : ENHANCED_LAYERS,
      batches,
      modes,
      timing,
      ceilings: doc.roofline
        ? { gflopPerS: doc.roofline.matmul.gflopPerS, gbPerS: doc.roofline.copy.gbPerS }
        : null,
      cpu: !f["no-cpu"] && f.backend === "webgpu",
      log,
    });
  }
  if (suites.includes("train")) {
    log("train ...");
    const { runTrainSuite } = await import("./train_suite.ts");
    const batches = batchFlag ??
      (f.quick ? [4] : slow ? [32, 64] : [32, 64, 128, 256, 512]);
    doc.train = await runTrainSuite({
      batches,
      timing,
      limit: f.limit,
      dataDir: f.data,
      optimizer: f.optimizer as OptimizerKind,
      log,
    });
  }
  doc.options.batches = batchFlag ?? [];
  return doc;
}
