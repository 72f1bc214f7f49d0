// What a run keeps on disk to continue exactly: the loop state stored in each checkpoint
// (checkpoints/best and checkpoints/last, see src/model/checkpoint.ts), saving it, and restoring
// weights, Adam state, loop state and history on --resume.

import type * as tf from "@tensorflow/tfjs-core";
import {
  type LoadedCheckpoint,
  readCheckpoint,
  restoreOptimizer,
  restoreWeights,
  saveCheckpoint,
} from "../model/checkpoint.ts";
import type { Model } from "../model/model.ts";
import type { TrainConfig } from "./config.ts";
import { type EpochRecord, readHistory } from "./history.ts";
import {
  cosineLr,
  EarlyStopping,
  type EarlyStoppingState,
  type PlateauState,
  ReduceOnPlateau,
} from "./schedule.ts";

/** Partial-epoch sums, so an interrupted epoch reports the same metrics when finished. */
export interface RunningSums {
  lossSum: number;
  correct: number;
  seen: number;
  timeS: number;
}

/** Loop state stored in checkpoints (`state`), enough to continue exactly. */
export interface LoopState {
  /** 0-based epoch in progress. */
  epoch: number;
  /** Steps already taken in that epoch. */
  step: number;
  globalStep: number;
  lr: number;
  running: RunningSums;
  earlyStopping: EarlyStoppingState;
  plateau: PlateauState | null;
  /** Streams are derived from (seed, epoch, step); recorded for the reader. */
  rng: { seed: number; scheme: string };
  done: boolean;
}

export function emptyRunningSums(): RunningSums {
  return { lossSum: 0, correct: 0, seen: 0, timeS: 0 };
}

export function initialState(cfg: TrainConfig): LoopState {
  return {
    epoch: 0,
    step: 0,
    globalStep: 0,
    lr: cfg.schedule === "cosine" ? cosineLr(0, cfg.epochs, cfg.lr) : cfg.lr,
    running: emptyRunningSums(),
    earlyStopping: new EarlyStopping(cfg.patience).state,
    plateau: cfg.schedule === "plateau" ? new ReduceOnPlateau(cfg.lr).state : null,
    rng: { seed: cfg.seed, scheme: "mulberry32(deriveSeed(seed, stream, epoch, step))" },
    done: false,
  };
}

/**
 * The state to start from: a fresh run's, or `resume`'s with its weights and Adam state restored
 * into `model` and `optimizer` and the history of the epochs it had finished.
 */
export async function startingState(
  cfg: TrainConfig,
  outDir: string,
  model: Model,
  optimizer: tf.Optimizer,
  resume: LoadedCheckpoint | undefined,
): Promise<{ state: LoopState; history: EpochRecord[] }> {
  const state = initialState(cfg);
  if (!resume) return { state, history: [] };
  restoreWeights(model, resume);
  await restoreOptimizer(optimizer, model, resume);
  const resumed = { ...state, ...(resume.meta.state as unknown as LoopState) };
  const history = (await readHistory(outDir)).filter((h) => h.epoch <= resumed.epoch);
  if (resumed.done && resumed.epoch < cfg.epochs) resumed.done = false; // --epochs raised
  return { state: resumed, history };
}

/** Saves `checkpoints/<which>` of the run in `outDir`: weights, config, Adam and loop state. */
export type SaveCheckpoint = (which: "best" | "last", state: LoopState) => Promise<void>;

export function checkpointSaver(
  outDir: string,
  cfg: TrainConfig,
  model: Model,
  optimizer: tf.Optimizer,
): SaveCheckpoint {
  return (which, state) =>
    saveCheckpoint(`${outDir}/checkpoints/${which}`, model, {
      config: cfg as unknown as Record<string, unknown>,
      optimizer,
      state: state as unknown as Record<string, unknown>,
    });
}

/** Loads checkpoints/best into `model` (Keras restore_best_weights); no-op when there is none. */
export async function restoreBestWeights(outDir: string, model: Model): Promise<void> {
  const best = await readCheckpoint(`${outDir}/checkpoints/best`).catch(() => null);
  if (best) restoreWeights(model, best);
}
