// `fmnist eval --run DIR | --checkpoint PATH`: test-set metrics, pictures and report for a run.

import { parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { startTf } from "../tf/setup.ts";

const DEFS = {
  run: { type: "string", help: "run folder (its best checkpoint is evaluated; outputs go there)" },
  checkpoint: {
    type: "string",
    help: "checkpoint folder or checkpoint.json (default: the run's checkpoints/best)",
  },
  data: {
    type: "string",
    help: "Fashion-MNIST folder (default: FASHION_MNIST_DIR, ./data, Debian's)",
  },
  limit: { type: "int", min: 1, help: "evaluate only the first N test images" },
  "batch-size": { type: "int", min: 1, max: 10000, default: 500, help: "images per forward pass" },
  backend: { type: "enum", choices: ["webgpu", "cpu"], default: "webgpu", help: "tfjs backend" },
} as const;

const USAGE = "fmnist eval --run DIR | --checkpoint PATH [--data DIR] [--limit N]";
const INTRO = "Evaluates a trained model on the Fashion-MNIST test set and writes metrics.json,\n" +
  "plots/ (SVG + PNG) and report.html into the run folder.";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, DEFS, { usage: USAGE, intro: INTRO });
  if (f === null) return;
  if (f.run === undefined && f.checkpoint === undefined) {
    throw new UsageError("give --run DIR or --checkpoint PATH (see --help)");
  }
  const log = (m: string) => console.log(m);
  await startTf("eval", f.backend as "webgpu" | "cpu", "any", log);
  await evaluateRun(f.run ?? "", {
    checkpoint: f.checkpoint,
    dataDir: f.data,
    limit: f.limit,
    batchSize: f["batch-size"],
    log,
  });
}
