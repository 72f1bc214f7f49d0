// Train suite: images/s of one full training step (forward, backward, Adam update) for the
// baseline and enhanced CNNs, each on our kernels and on stock tfjs ops, over a batch sweep;
// epoch time extrapolated from it and, with `limit`, measured on a real data subset. Each case
// also reports dispatches per step and the host time to issue a step next to its wall time
// (bench/dispatches.ts).

import * as tf from "@tensorflow/tfjs-core";
import { createModel } from "../src/model/model.ts";
import type { TilePlan } from "../src/ops/conv/tile_plan.ts";
import { makeTrainStep } from "../src/train/step.ts";
import { createAdam, type OptimizerKind } from "../src/train/optimizer.ts";
import { loadFashionMnist } from "../src/data/fashion_mnist.ts";
import {
  batchIterator,
  imagesToTensor,
  labelsToOneHot,
  shuffledIndices,
} from "../src/data/dataset.ts";
import { createRng } from "../src/random.ts";
import { measure, type Stats, type TimingOptions } from "./timing.ts";
import { probeCapturedStep, probeStep, type StepProbe } from "./dispatches.ts";
import {
  type CapturedFigures,
  EPOCH_IMAGES,
  TRAIN_VARIANTS,
  type TrainCase,
  type TrainVariant,
} from "./train_types.ts";

export { EPOCH_IMAGES, TRAIN_VARIANTS, type TrainCase, type TrainVariant };

export interface TrainSuiteOptions {
  batches: number[];
  timing: TimingOptions;
  variants?: TrainVariant[];
  /** Measure a pass over this many real training images per case (0: skip). */
  limit: number;
  dataDir?: string;
  seed?: number;
  /** Adam implementation (default fused: the AdamStep kernel). */
  optimizer?: OptimizerKind;
  /** The tile plan the fused models run under (default: the adapter's built-in one). */
  tiles?: TilePlan;
  log?: (msg: string) => void;
}

/** One step per sample; inputs are synthetic (the step's cost does not depend on pixel values). */
async function timeSteps(
  v: TrainVariant,
  batch: number,
  timing: TimingOptions,
  seed: number,
  optimizerKind: OptimizerKind,
  tiles: TilePlan | undefined,
): Promise<{ stats: Stats; probe: StepProbe; captured: CapturedFigures | null; status: string }> {
  const model = createModel(v.model, { ops: v.ops, seed });
  model.tiles = tiles;
  const optimizer = createAdam(model, 1e-3, optimizerKind);
  const step = makeTrainStep(model, optimizer);
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", seed) as tf.Tensor4D;
  const labels = tf.randomUniform([batch], 0, 10, "int32", seed + 1);
  const y = tf.tidy(() => tf.cast(tf.oneHot(labels as tf.Tensor1D, 10), "float32")) as tf.Tensor2D;
  try {
    const stats = await measure(() => step(x, y), timing);
    // Separate untimed-by-GPU runs: timestamp queries end a compute pass per program, which
    // would inflate the host figures.
    const repeats = Math.min(3, Math.max(1, timing.repeats));
    const probe = await probeStep(() => step(x, y), repeats);
    const c = await probeCapturedStep(() => step(x, y), String(batch), repeats);
    const captured = c.probe && {
      dispatchesPerStep: c.probe.dispatchesPerStep!,
      hostIssueMs: c.probe.hostIssueMs,
      wallMs: c.probe.wallMs,
      mainCpuMs: c.probe.mainCpuMs,
      mainCpuPerDispatchMs: c.probe.mainCpuPerDispatchMs!,
    };
    return { stats, probe, captured, status: c.status };
  } finally {
    tf.dispose([x, labels, y]);
    optimizer.dispose();
    model.dispose();
  }
}

async function timeSubset(
  v: TrainVariant,
  batch: number,
  limit: number,
  split: { images: Uint8Array; labels: Uint8Array; count: number },
  seed: number,
  optimizerKind: OptimizerKind,
  tiles: TilePlan | undefined,
): Promise<number> {
  const model = createModel(v.model, { ops: v.ops, seed });
  model.tiles = tiles;
  const optimizer = createAdam(model, 1e-3, optimizerKind);
  const step = makeTrainStep(model, optimizer);
  const rng = createRng(seed);
  const indices = shuffledIndices(split.count, rng).slice(0, limit);
  try {
    // One untimed step compiles the shaders, as the first epoch of a real run would.
    const warm = indices.slice(0, Math.min(batch, indices.length));
    await runBatch(step, split, warm);
    const start = performance.now();
    for (const idx of batchIterator(indices, batch, rng)) await runBatch(step, split, idx);
    return (performance.now() - start) / 1000;
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

async function runBatch(
  step: (x: tf.Tensor4D, y: tf.Tensor2D) => tf.Scalar,
  split: { images: Uint8Array; labels: Uint8Array; count: number },
  idx: ArrayLike<number>,
) {
  const x = imagesToTensor(split, idx);
  const y = labelsToOneHot(split, idx);
  const loss = step(x, y);
  await loss.data();
  tf.dispose([x, y, loss]);
}

export async function runTrainSuite(opts: TrainSuiteOptions): Promise<TrainCase[]> {
  const log = opts.log ?? (() => {});
  const seed = opts.seed ?? 1;
  const variants = opts.variants ?? TRAIN_VARIANTS;
  const optimizerKind = opts.optimizer ?? "fused";
  const data = opts.limit > 0
    ? (await loadFashionMnist({ dataDir: opts.dataDir, log })).train
    : null;
  const cases: TrainCase[] = [];
  for (const batch of opts.batches) {
    for (const v of variants) {
      log(`  ${v.id} b${batch} ...`);
      const { stats, probe, captured, status } = await timeSteps(
        v,
        batch,
        opts.timing,
        seed,
        optimizerKind,
        opts.tiles,
      );
      const imagesPerS = batch / (stats.medianMs / 1000);
      let subset = null;
      if (data) {
        const images = Math.min(opts.limit, data.count);
        const seconds = await timeSubset(v, batch, images, data, seed, optimizerKind, opts.tiles);
        subset = { images, seconds, epochSExtrapolated: seconds * EPOCH_IMAGES / images };
      }
      cases.push({
        id: `${v.id} b${batch}`,
        variant: v,
        batch,
        stats,
        imagesPerS,
        epochSExtrapolated: EPOCH_IMAGES / imagesPerS,
        subset,
        speedupVsStock: null,
        optimizer: optimizerKind,
        dispatchesPerStep: probe.dispatchesPerStep,
        hostIssueMs: probe.hostIssueMs,
        wallMs: probe.wallMs,
        mainCpuMs: probe.mainCpuMs,
        mainCpuPerDispatchMs: probe.mainCpuPerDispatchMs,
        captured,
        captureStatus: status,
      });
    }
    for (const fused of cases.filter((c) => c.batch === batch && c.variant.ops === "fused")) {
      const stock = cases.find((c) =>
        c.batch === batch && c.variant.ops === "stock" && c.variant.model === fused.variant.model
      );
      if (stock) fused.speedupVsStock = stock.stats.medianMs / fused.stats.medianMs;
    }
  }
  return cases;
}
