// The training loop: epochs of shuffled mini-batches, validation each epoch, LR schedule, early
// stopping, checkpoints (best + last) and history files, resumable mid-epoch. The pieces live
// beside it: validation.ts, checkpointing.ts (loop state, save, resume), history.ts, progress.ts.
//
// Reproducibility: every random draw comes from a stream derived from (seed, epoch, step): the
// epoch's shuffle, each step's augmentation and dropout. A resumed run therefore needs only
// (epoch, step) plus the weights and Adam state to continue bit-for-bit (on the CPU backend).

import * as tf from "@tensorflow/tfjs-core";
import { assertDeviceOk, untilDeviceFailure } from "../tf/device_guard.ts";
import {
  batchIterator,
  imagesToTensor,
  labelsToOneHot,
  limitSplit,
  stratifiedSplit,
} from "../data/dataset.ts";
import type { FashionMnist, Split } from "../data/fashion_mnist.ts";
import type { LoadedCheckpoint } from "../model/checkpoint.ts";
import { createModel, type Model } from "../model/model.ts";
import { createRng, deriveSeed, Rng } from "../random.ts";
import { augmentBatch } from "./augment.ts";
import { createAdam } from "./optimizer.ts";
import {
  checkpointSaver,
  emptyRunningSums,
  type LoopState,
  restoreBestWeights,
  type RunningSums,
  type SaveCheckpoint,
  startingState,
} from "./checkpointing.ts";
import type { TrainConfig } from "./config.ts";
import { type EpochRecord, writeHistory } from "./history.ts";
import type { Progress } from "./progress.ts";
import { cosineLr, EarlyStopping, ReduceOnPlateau } from "./schedule.ts";
import { makeTrainStepWithMetrics, type StepResult } from "./step.ts";
import { evaluate } from "./validation.ts";

export type { EpochRecord } from "./history.ts";
export type { LoopState } from "./checkpointing.ts";

export interface TrainResult {
  history: EpochRecord[];
  bestEpoch: number;
  bestValAcc: number;
  stoppedEarly: boolean;
  interrupted: boolean;
  /** The trained model, holding the best weights (unless interrupted). Caller disposes. */
  model: Model;
}

export class DivergedError extends Error {
  override name = "DivergedError";
}

export interface LoopOptions {
  outDir: string;
  progress: Progress;
  log: (msg: string) => void;
  /** Continue from `outDir/checkpoints/last`. */
  resume?: LoadedCheckpoint;
  /** Polled after every step (SIGINT, SIGTERM); true = save checkpoints/last and return. */
  stopRequested?: () => boolean;
}

export interface PreparedData {
  train: Split;
  trainIdx: Int32Array;
  valIdx: Int32Array;
}

/** --limit and the stratified validation split (seeded by the run's seed). */
export function prepareData(data: FashionMnist, cfg: TrainConfig): PreparedData {
  const train = cfg.limit > 0 ? limitSplit(data.train, cfg.limit) : data.train;
  if (cfg.valSplit === 0) {
    return {
      train,
      trainIdx: Int32Array.from({ length: train.count }, (_, i) => i),
      valIdx: new Int32Array(0),
    };
  }
  const { train: trainIdx, val: valIdx } = stratifiedSplit(train.labels, cfg.valSplit, cfg.seed);
  return { train, trainIdx, valIdx };
}

/** The model a training config describes, freshly initialised from its seed. */
export function createTrainModel(cfg: TrainConfig): Model {
  return createModel(cfg.model, {
    ops: cfg.ops,
    seed: cfg.seed,
    dropout: cfg.dropout,
    l2: cfg.weightDecay,
  });
}

/** Adam, fused by default (src/train/optimizer.ts); `--optimizer tfjs` gives tf.train.adam. */
export function createOptimizer(cfg: TrainConfig, model: Model): tf.Optimizer {
  return createAdam(model, cfg.lr, cfg.optimizer ?? "fused");
}

/** Adam reads `learningRate` on every step, so the schedule can change it between epochs. */
export function setLearningRate(opt: tf.Optimizer, lr: number) {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}

export async function runTraining(
  cfg: TrainConfig,
  data: PreparedData,
  opts: LoopOptions,
): Promise<TrainResult> {
  const model = createTrainModel(cfg);
  const optimizer = createOptimizer(cfg, model);
  try {
    return await loop(cfg, data, opts, model, optimizer);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    optimizer.dispose();
  }
}

/** What every epoch of one run shares. */
interface RunContext {
  cfg: TrainConfig;
  data: PreparedData;
  opts: LoopOptions;
  model: Model;
  step: (x: tf.Tensor4D, y: tf.Tensor2D) => StepResult;
  stepsPerEpoch: number;
}

/** Early stopping and the plateau schedule, restored from and saved into the loop state. */
class Schedules {
  readonly early: EarlyStopping;
  readonly plateau: ReduceOnPlateau | null;

  constructor(private readonly cfg: TrainConfig, state: LoopState) {
    this.early = new EarlyStopping(cfg.patience);
    this.early.state = { ...state.earlyStopping };
    this.plateau = cfg.schedule === "plateau" ? new ReduceOnPlateau(cfg.lr) : null;
    if (this.plateau && state.plateau) this.plateau.state = { ...state.plateau };
  }

  /** Learning rate for epoch `e`. Cosine is a function of (epoch, epochs): recomputed, so a
   * resume with more --epochs works. */
  lrAt(e: number, current: number): number {
    return this.cfg.schedule === "cosine" ? cosineLr(e, this.cfg.epochs, this.cfg.lr) : current;
  }

  /** After epoch `e`: whether it is the best so far, whether to stop, the next epoch's LR. */
  update(e: number, record: EpochRecord): { improved: boolean; stop: boolean; nextLr: number } {
    // Without a validation split every epoch counts as the best (the latest weights).
    const { improved, stop } = Number.isNaN(record.valAcc)
      ? { improved: true, stop: false }
      : this.early.update(e + 1, record.valAcc);
    let nextLr = this.lrAt(e + 1, record.lr);
    if (this.plateau) {
      nextLr = this.plateau.update(Number.isNaN(record.valLoss) ? record.loss : record.valLoss);
    }
    return { improved, stop, nextLr };
  }

  snapshot(): Pick<LoopState, "earlyStopping" | "plateau"> {
    return {
      earlyStopping: { ...this.early.state },
      plateau: this.plateau ? { ...this.plateau.state } : null,
    };
  }
}

async function loop(
  cfg: TrainConfig,
  data: PreparedData,
  opts: LoopOptions,
  model: Model,
  optimizer: tf.Optimizer,
): Promise<TrainResult> {
  let { state, history } = await startingState(cfg, opts.outDir, model, optimizer, opts.resume);
  const schedules = new Schedules(cfg, state);
  opts.log(
    `model ${cfg.model} (ops ${cfg.ops}): ${
      model.paramCount.toLocaleString("en-US")
    } parameters; ` +
      `${data.trainIdx.length} training / ${data.valIdx.length} validation images`,
  );
  const ctx: RunContext = {
    cfg,
    data,
    opts,
    model,
    step: makeTrainStepWithMetrics(model, optimizer, { labelSmoothing: cfg.labelSmoothing }),
    stepsPerEpoch: Math.ceil(data.trainIdx.length / cfg.batch),
  };
  const save = checkpointSaver(opts.outDir, cfg, model, optimizer);
  const result = (stoppedEarly: boolean, interrupted: boolean): TrainResult => ({
    ...summary(history, schedules.early),
    stoppedEarly,
    interrupted,
    model,
  });
  let stoppedEarly = false;

  while (!state.done && state.epoch < cfg.epochs) {
    state.lr = schedules.lrAt(state.epoch, state.lr);
    setLearningRate(optimizer, state.lr);
    const epoch = await trainEpoch(ctx, state);
    if (epoch.interrupted) {
      state = { ...state, step: epoch.stepsDone, running: epoch.running };
      opts.progress.clear();
      await save("last", state);
      return result(false, true);
    }
    const end = await endEpoch(ctx, state, epoch.running, history, schedules, save);
    state = end.state;
    stoppedEarly = end.stop;
    if (opts.stopRequested?.() && !state.done) return result(false, true);
    if (end.stop) {
      opts.log(
        `early stopping: no validation-accuracy gain for ${cfg.patience} epochs ` +
          `(best ${schedules.early.state.best.toFixed(4)} at epoch ` +
          `${schedules.early.state.bestEpoch})`,
      );
    }
  }
  await restoreBestWeights(opts.outDir, model);
  return result(stoppedEarly, false);
}

type EpochOutcome =
  | { interrupted: false; running: RunningSums }
  | { interrupted: true; running: RunningSums; stepsDone: number };

/**
 * The steps of epoch `state.epoch` from step `state.step` on (a resumed epoch skips the batches
 * it had taken). Stops early, with the sums so far, when a stop is requested mid-epoch.
 */
async function trainEpoch(ctx: RunContext, state: LoopState): Promise<EpochOutcome> {
  const { cfg, data, opts } = ctx;
  const e = state.epoch;
  const order = batchIterator(data.trainIdx, cfg.batch, createRng(deriveSeed(cfg.seed, 5, e)));
  for (let i = 0; i < state.step; i++) order.next(); // resume mid-epoch
  const running = { ...state.running };
  let stepInEpoch = state.step;
  const epochStart = performance.now() - running.timeS * 1000;
  for (const idx of order) {
    const t0 = performance.now();
    const { loss, correct } = await trainStep(ctx, state, stepInEpoch, idx);
    stepInEpoch++;
    state.globalStep++;
    running.lossSum += loss * idx.length;
    running.correct += correct;
    running.seen += idx.length;
    const elapsed = (performance.now() - epochStart) / 1000;
    const stepS = (performance.now() - t0) / 1000;
    opts.progress.step({
      epoch: e + 1,
      epochs: cfg.epochs,
      step: stepInEpoch,
      steps: ctx.stepsPerEpoch,
      loss: running.lossSum / running.seen,
      acc: running.correct / running.seen,
      imagesPerS: idx.length / Math.max(stepS, 1e-9),
      etaS: (elapsed / stepInEpoch) * (ctx.stepsPerEpoch - stepInEpoch),
    });
    if (await stopRequestedAfterStep(opts) && stepInEpoch < ctx.stepsPerEpoch) {
      running.timeS = (performance.now() - epochStart) / 1000;
      return { interrupted: true, running, stepsDone: stepInEpoch };
    }
  }
  running.timeS = (performance.now() - epochStart) / 1000;
  return { interrupted: false, running };
}

/** Gives a pending signal listener a macrotask turn, then polls `stopRequested`. */
async function stopRequestedAfterStep(opts: LoopOptions): Promise<boolean> {
  await new Promise((r) => setTimeout(r, 0));
  return opts.stopRequested?.() ?? false;
}

/** One optimizer step on the batch `idx`; its loss and correct count, read back. */
async function trainStep(
  ctx: RunContext,
  state: LoopState,
  stepInEpoch: number,
  idx: Int32Array,
): Promise<{ loss: number; correct: number }> {
  const { cfg, data, model } = ctx;
  const e = state.epoch;
  const [lossT, correctT] = tf.tidy(() => {
    let x = imagesToTensor(data.train, idx);
    const y = labelsToOneHot(data.train, idx);
    if (cfg.augment) x = augmentBatch(x, new Rng(deriveSeed(cfg.seed, 3, e, stepInEpoch)));
    model.rng.state = deriveSeed(cfg.seed, 4, e, stepInEpoch);
    const r = ctx.step(x, y);
    return [r.loss, r.correct];
  });
  // A lost device can leave a read-back pending forever: race it against the guard.
  const loss = (await untilDeviceFailure(lossT.data()))[0];
  const correct = (await untilDeviceFailure(correctT.data()))[0];
  tf.dispose([lossT, correctT]);
  assertDeviceOk();
  if (!Number.isFinite(loss)) {
    ctx.opts.progress.clear();
    throw new DivergedError(
      `loss became ${loss} at epoch ${e + 1} step ${stepInEpoch + 1}: training stopped. ` +
        (e > 0
          ? `The last good checkpoint (end of epoch ${e}) is in ${ctx.opts.outDir}/checkpoints/last`
          : "No checkpoint was written yet") +
        ` (try a lower --lr, now ${state.lr.toPrecision(3)})`,
    );
  }
  return { loss, correct };
}

/**
 * After an epoch's steps: validation, the history row, schedules, checkpoints (best when it
 * improved, always last), history files and the epoch line. Returns the next epoch's state.
 */
async function endEpoch(
  ctx: RunContext,
  state: LoopState,
  running: RunningSums,
  history: EpochRecord[],
  schedules: Schedules,
  save: SaveCheckpoint,
): Promise<{ state: LoopState; stop: boolean }> {
  const { cfg, data, model, opts } = ctx;
  const e = state.epoch;
  const val = await evaluate(model, data.train, data.valIdx);
  const record: EpochRecord = {
    epoch: e + 1,
    loss: running.lossSum / running.seen,
    acc: running.correct / running.seen,
    valLoss: val.loss,
    valAcc: val.acc,
    lr: state.lr,
    epochTimeS: running.timeS,
  };
  history.push(record);
  const { improved, stop, nextLr } = schedules.update(e, record);
  const next: LoopState = {
    ...state,
    epoch: e + 1,
    step: 0,
    lr: nextLr,
    running: emptyRunningSums(),
    ...schedules.snapshot(),
    done: stop || e + 1 >= cfg.epochs,
  };
  if (improved) await save("best", next);
  await save("last", next);
  await writeHistory(opts.outDir, history);
  opts.progress.epochEnd({ ...record, epochs: cfg.epochs, best: improved });
  return { state: next, stop };
}

function summary(history: EpochRecord[], early: EarlyStopping) {
  const bestEpoch = early.state.bestEpoch > 0 ? early.state.bestEpoch : history.length;
  const bestValAcc = history.find((h) => h.epoch === bestEpoch)?.valAcc ?? NaN;
  return { history, bestEpoch, bestValAcc };
}
