// What a run keeps on disk to continue exactly: the loop state and Adam's state stored in each
// checkpoint (checkpoints/best and checkpoints/last; the file layout is src/model/checkpoint.ts's,
// which stores the optimizer section without reading it), saving them, and restoring weights,
// Adam state, loop state and history on --resume.

import * as tf from "@tensorflow/tfjs-core";
import {
  CheckpointError,
  checkpointTensor,
  type LoadedCheckpoint,
  type OptimizerSection,
  readCheckpoint,
  restoreWeights,
  saveCheckpoint,
  type TensorEntry,
} from "../model/checkpoint.ts";
import type { Model } from "../model/model.ts";
import { adamBetaPowers, isAdam, setAdamBetaPowers } from "./optimizer.ts";
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
    saveTrainingCheckpoint(`${outDir}/checkpoints/${which}`, model, optimizer, {
      config: cfg as unknown as Record<string, unknown>,
      state: state as unknown as Record<string, unknown>,
    });
}

/** Adam's section of a checkpoint (`optimizer` in checkpoint.json). */
export interface AdamState {
  type: "adam";
  iterations: number;
  /** Adam's running beta powers, saved exactly (recomputing them with pow differs in the ulp). */
  accBeta1: number;
  accBeta2: number;
  /** First moments then second moments, one per trainable variable in model order. */
  tensors: TensorEntry[];
}

/** saveCheckpoint with Adam's moments, step and beta powers as the optimizer section. */
export async function saveTrainingCheckpoint(
  dir: string,
  model: Model,
  optimizer: tf.Optimizer,
  opts: { config: Record<string, unknown>; state?: Record<string, unknown> },
): Promise<void> {
  const section = await adamSection(optimizer, model);
  try {
    await saveCheckpoint(dir, model, { ...opts, optimizer: section });
  } finally {
    // tf.train.adam hands out its moment variables, FusedAdam fresh slices of its packed state.
    for (const t of section.tensors) if (!(t.tensor instanceof tf.Variable)) t.tensor.dispose();
  }
}

async function adamSection(opt: tf.Optimizer, model: Model): Promise<OptimizerSection> {
  // tf.train.adam and FusedAdam (./optimizer.ts) expose the same state: either one resumes the
  // other's checkpoints.
  if (!isAdam(opt)) throw new Error("checkpoints support the Adam optimizer only");
  const [iter, ...moments] = await opt.getWeights();
  const iterations = (await iter.tensor.data())[0];
  iter.tensor.dispose(); // a fresh scalar made by getWeights
  const trainable = model.variables.filter((v) => v.trainable);
  if (moments.length > 0 && moments.length !== 2 * trainable.length) {
    for (const m of moments) if (!(m.tensor instanceof tf.Variable)) m.tensor.dispose();
    throw new Error(`optimizer holds ${moments.length} moments for ${trainable.length} variables`);
  }
  const tensors = moments.map((m, i) => {
    const v = trainable[i % trainable.length];
    return { name: `${v.name}/${i < trainable.length ? "m" : "v"}`, tensor: m.tensor };
  });
  const [accBeta1, accBeta2] = await adamBetaPowers(opt);
  return { fields: { type: "adam", iterations, accBeta1, accBeta2 }, tensors };
}

/** The checkpoint's Adam section, checked; null when it has none (saved without an optimizer). */
export function adamState(ck: LoadedCheckpoint): AdamState | null {
  const s = ck.meta.optimizer;
  if (!s) return null;
  const numbers = [s.iterations, s.accBeta1, s.accBeta2];
  if (s.type !== "adam" || !numbers.every((n) => typeof n === "number" && Number.isFinite(n))) {
    throw new CheckpointError(`${ck.dir}/checkpoint.json: optimizer section is not Adam's`);
  }
  return s as unknown as AdamState;
}

/** Restores Adam's moments, iteration count and beta powers into a fresh Adam optimizer. */
export async function restoreOptimizer(
  opt: tf.Optimizer,
  model: Model,
  ck: LoadedCheckpoint,
): Promise<void> {
  const s = adamState(ck);
  if (!s || s.tensors.length === 0) return;
  const trainable = model.variables.filter((v) => v.trainable);
  if (s.tensors.length !== 2 * trainable.length) {
    throw new CheckpointError(`${ck.dir}/checkpoint.json: optimizer state does not fit the model`);
  }
  const values: { name: string; tensor: tf.Tensor }[] = [{
    name: "iter",
    tensor: tf.scalar(s.iterations, "int32"),
  }];
  s.tensors.forEach((e, i) => {
    const v = trainable[i % trainable.length];
    const kind = i < trainable.length ? "m" : "v";
    if (e.name !== `${v.name}/${kind}`) {
      tf.dispose(values.map((v) => v.tensor));
      throw new CheckpointError(
        `${ck.dir}/checkpoint.json: optimizer tensor ${e.name} out of order`,
      );
    }
    values.push({ name: `${v.variable.name}/${kind}`, tensor: checkpointTensor(ck, e) });
  });
  await opt.setWeights(values);
  tf.dispose(values.map((v) => v.tensor));
  setAdamBetaPowers(opt, s.accBeta1, s.accBeta2);
}

/** Loads checkpoints/best into `model` (Keras restore_best_weights); no-op when there is none. */
export async function restoreBestWeights(outDir: string, model: Model): Promise<void> {
  const best = await readCheckpoint(`${outDir}/checkpoints/best`).catch(() => null);
  if (best) restoreWeights(model, best);
}
