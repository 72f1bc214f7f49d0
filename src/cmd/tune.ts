// `deno task tune`: grid or random search over learning rate, batch size, dropout, L2 and
// epochs on a small budget; writes results.csv, results.md (ranked by validation accuracy) and
// best-config.json for `deno task train --config FILE`.

import { type FlagDefs, parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { CONFIG_FLAGS, explicitOptions, resolveConfig, type TrainConfig } from "../train/config.ts";
import { prepareData, runTraining } from "../train/loop.ts";
import { createProgress } from "../train/progress.ts";
import {
  gridTrials,
  randomTrials,
  rankResults,
  resultsCsv,
  resultsMarkdown,
  type SearchSpace,
  type TrialResult,
} from "../train/tune.ts";
import { startTf } from "../tf/setup.ts";

const SEARCHED = ["lr", "batch", "dropout", "weight-decay", "epochs"] as const;

const FIXED = Object.fromEntries(
  Object.entries(CONFIG_FLAGS).filter(([k]) => !(SEARCHED as readonly string[]).includes(k)),
);

const DEFS = {
  search: { type: "enum", choices: ["grid", "random"], default: "grid", help: "search strategy" },
  trials: {
    type: "int",
    min: 1,
    max: 1000,
    help: "number of trials (default: grid = all, random = 8)",
  },
  lr: { type: "list", default: ["5e-4", "1e-3", "2e-3"], help: "learning rates to try" },
  batch: { type: "list", default: ["64", "128"], help: "batch sizes to try" },
  dropout: { type: "list", default: ["0.2", "0.4"], help: "dropout rates to try" },
  "weight-decay": { type: "list", default: ["0", "1e-4"], help: "L2 coefficients to try" },
  epochs: { type: "list", default: ["2"], help: "epoch counts to try" },
  ...FIXED,
  out: { type: "string", help: "results folder (default runs/tune-<timestamp>/)" },
  quiet: { type: "bool", help: "no per-step progress" },
} as FlagDefs;

/** Parses a list flag of numbers with the bounds of the matching training flag. */
function numbers(flag: (typeof SEARCHED)[number], items: string[]): number[] {
  const def = CONFIG_FLAGS[flag];
  if (items.length === 0) throw new UsageError(`--${flag} needs at least one value`);
  return items.map((s) => {
    const n = Number(s);
    if (s === "" || !Number.isFinite(n) || (def.type === "int" && !Number.isInteger(n))) {
      throw new UsageError(
        `--${flag}: "${s}" is not ${def.type === "int" ? "an integer" : "a number"}`,
      );
    }
    if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
      throw new UsageError(`--${flag}: ${s} is outside ${def.min}..${def.max}`);
    }
    return n;
  });
}

export async function main(argv: string[]): Promise<void> {
  const parsed = parseCommandFlags(argv, DEFS, {
    usage: "deno task tune [flags]",
    intro: "Searches hyperparameters on a small budget (--limit, --epochs).",
  });
  if (parsed === null) return;
  const f = parsed as Record<string, unknown> & { help: boolean };
  const space: SearchSpace = {
    lr: numbers("lr", f.lr as string[]),
    batch: numbers("batch", f.batch as string[]),
    dropout: numbers("dropout", f.dropout as string[]),
    weightDecay: numbers("weight-decay", f["weight-decay"] as string[]),
    epochs: numbers("epochs", f.epochs as string[]),
  };
  const fixed = explicitOptions(f);
  const base = resolveConfig({}, { limit: 5000, ...fixed, evalLimit: 0 });
  const trials = f.search === "random"
    ? randomTrials(space, (f.trials as number | undefined) ?? 8, base.seed)
    : f.trials
    ? randomTrials(space, f.trials as number, base.seed)
    : gridTrials(space);
  const outDir = (f.out as string | undefined) ??
    `runs/tune-${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}`;
  const log = (m: string) => console.log(m);

  await startTf("tune", base.backend, base.adapter, log);
  const data = await loadFashionMnist({ dataDir: base.data, log });
  await Deno.mkdir(outDir, { recursive: true });
  log(
    `${trials.length} trials (${f.search}) of ${base.model}, ${
      base.limit || "all"
    } images; results in ${outDir}`,
  );

  const results: TrialResult[] = [];
  for (const [i, trial] of trials.entries()) {
    const cfg: TrainConfig = { ...base, ...trial };
    const trialDir = `${outDir}/trial-${String(i + 1).padStart(3, "0")}`;
    await Deno.mkdir(`${trialDir}/checkpoints`, { recursive: true });
    await Deno.writeTextFile(`${trialDir}/config.json`, JSON.stringify(cfg, null, 2) + "\n");
    log(`trial ${i + 1}/${trials.length}: ${describe(trial)}`);
    const start = performance.now();
    const row: TrialResult = {
      ...trial,
      trial: i + 1,
      valAcc: NaN,
      valLoss: NaN,
      bestEpoch: 0,
      timeS: 0,
    };
    try {
      const r = await runTraining(cfg, prepareData(data, cfg), {
        outDir: trialDir,
        progress: createProgress({ quiet: f.quiet as boolean }),
        log: () => {},
      });
      r.model.dispose();
      const best = r.history.find((h) => h.epoch === r.bestEpoch);
      Object.assign(row, {
        valAcc: r.bestValAcc,
        valLoss: best?.valLoss ?? NaN,
        bestEpoch: r.bestEpoch,
      });
    } catch (e) {
      if (e instanceof UsageError) throw e;
      row.error = (e as Error).message.split(":")[0];
      log(`  failed: ${(e as Error).message}`);
    }
    row.timeS = (performance.now() - start) / 1000;
    results.push(row);
    log(`  val acc ${row.valAcc.toFixed(4)} (${row.timeS.toFixed(1)} s)`);
    await writeResults(outDir, results, base); // after every trial: partial results survive
  }
  const best = rankResults(results)[0];
  log(`best: ${describe(best)} -> val acc ${best.valAcc.toFixed(4)}`);
  log(`reuse it: deno task train --config ${outDir}/best-config.json`);
}

function describe(t: SearchSpaceValues): string {
  return `lr=${t.lr} batch=${t.batch} dropout=${t.dropout} weight-decay=${t.weightDecay} epochs=${t.epochs}`;
}

type SearchSpaceValues = Pick<TrainConfig, "lr" | "batch" | "dropout" | "weightDecay" | "epochs">;

async function writeResults(outDir: string, results: TrialResult[], base: TrainConfig) {
  const ranked = rankResults(results);
  const best = ranked[0];
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
  const title = `Tuning ${base.model} (${base.limit || "all"} training images, seed ${base.seed})`;
  await writeFileAtomic(`${outDir}/results.csv`, resultsCsv(ranked));
  await writeFileAtomic(`${outDir}/results.md`, resultsMarkdown(ranked, title));
  await writeFileAtomic(`${outDir}/best-config.json`, JSON.stringify(bestConfig, null, 2) + "\n");
}
