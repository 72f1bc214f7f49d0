// `deno task bench`: flags and output files; the suites themselves live in bench/ (bench/run.ts).
// Prints a terminal table, writes a JSON document (every figure + adapter + date + command) and
// a markdown summary, and compares with an earlier JSON run.

import { DEVICE_FLAGS, parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { MODES } from "../../bench/kernels_suite.ts";
import { OPTIMIZER_KINDS, type OptimizerKind } from "../train/optimizer.ts";
import { AUTOTUNE_SETTINGS, type AutotuneSetting, autotuneSetting } from "../flags.ts";
import { parseModels } from "../../bench/autotune_suite.ts";
import { type BenchSuite, runBench, SUITES } from "../../bench/run.ts";
import type { KernelMode } from "../../bench/work.ts";
import {
  type BenchDocument,
  compareDocuments,
  parseBenchDocument,
  renderComparison,
  renderMarkdown,
  renderText,
} from "../../bench/report.ts";

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
  models: {
    type: "list",
    help: "autotune suite: models whose conv layers to tune (default enhanced,baseline)",
  },
  autotune: {
    type: "enum",
    choices: AUTOTUNE_SETTINGS,
    help: "tile configs: on = cached choices, the autotune suite times what is missing; " +
      "off = built-in defaults; refresh = time again (default $FMNIST_AUTOTUNE, else on)",
  },
  ...DEVICE_FLAGS,
} as const;

const USAGE = "deno task bench [--suite kernels|train|roofline|autotune|all] [--json FILE] " +
  "[--compare OLD.json] [--markdown FILE] [--quick]";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, BENCH_FLAGS, {
    usage: USAGE,
    intro: "Benchmarks: roofline, fused kernels, training.",
  });
  if (f === null) return;
  const batches = parseBatches(f.batches);
  const modes = parseModes(f.modes);
  // Read the comparison file first: a typo should not cost a whole benchmark run.
  const oldDoc = f.compare ? await readDocument(f.compare) : null;
  const doc = await runBench({
    command: ["deno task bench", ...argv].join(" "),
    suite: f.suite as BenchSuite,
    batches,
    modes,
    quick: f.quick,
    warmup: f.warmup,
    repeats: f.repeats,
    limit: f.limit,
    dataDir: f.data,
    optimizer: f.optimizer as OptimizerKind,
    cpu: !f["no-cpu"],
    backend: f.backend as "webgpu" | "cpu",
    adapter: f.adapter as "any" | "hardware",
    models: parseModels(f.models),
    autotune: (f.autotune as AutotuneSetting | undefined) ?? autotuneSetting(),
  });
  console.log("\n" + renderText(doc));
  if (oldDoc) console.log("\n" + renderComparison(compareDocuments(oldDoc, doc), oldDoc, doc));
  if (f.json) {
    await writeFileAtomic(f.json, JSON.stringify(doc, null, 2) + "\n");
    console.log(`\nwrote ${f.json}`);
  }
  if (f.markdown) {
    await writeFileAtomic(f.markdown, renderMarkdown(doc));
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
