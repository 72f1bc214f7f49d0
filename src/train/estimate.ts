// Run-time estimate for slow adapters: times a few steps of a throwaway copy of the model on
// one real batch (the first includes shader compilation, so it is not counted).

import * as tf from "@tensorflow/tfjs-core";
import { imagesToTensor, labelsToOneHot } from "../data/dataset.ts";
import type { TrainConfig } from "./config.ts";
import { createOptimizer, createTrainModel, type PreparedData } from "./loop.ts";
import { makeTrainStep } from "./step.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

/** Seconds per training step, measured on `timed` steps after `warmup` untimed ones. */
export async function measureStepSeconds(
  cfg: TrainConfig,
  data: PreparedData,
  tiles?: TilePlan,
  warmup = 1,
  timed = 2,
): Promise<number> {
  const model = createTrainModel(cfg);
  model.tiles = tiles;
  const optimizer = createOptimizer(cfg, model);
  const idx = data.trainIdx.subarray(0, cfg.batch);
  const x = imagesToTensor(data.train, idx);
  const y = labelsToOneHot(data.train, idx);
  const step = makeTrainStep(model, optimizer, { labelSmoothing: cfg.labelSmoothing });
  try {
    let start = 0;
    for (let i = 0; i < warmup + timed; i++) {
      if (i === warmup) start = performance.now();
      const loss = step(x, y);
      await loss.data();
      loss.dispose();
    }
    return (performance.now() - start) / 1000 / timed;
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  }
}

/** "~2.40 s/step x 422 steps x 15 epochs: about 4 h 13 min (plus validation)". */
export function describeEstimate(stepS: number, stepsPerEpoch: number, epochs: number): string {
  return `~${stepS.toFixed(2)} s/step x ${stepsPerEpoch} steps x ${epochs} epochs: about ` +
    `${humanDuration(stepS * stepsPerEpoch * epochs)} (plus validation)`;
}

export function humanDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
