// The training loop: epochs of shuffled mini-batches, validation each epoch, LR schedule, early
// stopping, checkpoints (best + last) and history files, resumable mid-epoch. The pieces live
// beside it: validation.ts, checkpointing.ts (loop state, save, resume), history.ts, progress.ts.
//
// Reproducibility: every random draw comes from a stream derived from (seed, epoch, step): the
// epoch's shuffle, each step's augmentation and dropout. A resumed run therefore needs only
// (epoch, step) plus the weights and Adam state to continue bit-for-bit (on the CPU backend).

import * as tf from "@tensorflow/tfjs-core";
import { assertDeviceOk } from "../tf/device_guard.ts";
import { submitPending } from "../tf/submit.ts";
import { batchIterator, limitSplit, stratifiedSplit } from "../data/dataset.ts";
import type { FashionMnist, Split } from "../data/fashion_mnist.ts";
import type { LoadedCheckpoint } from "../model/checkpoint.ts";
import { createModel, type Model } from "../model/model.ts";
import { createRng, deriveSeed, Rng } from "../random.ts";
import { augmentBatch } from "./augment.ts";
import { createAdam, FusedAdam } from "./optimizer.ts";
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
import { BATCH_INDICES, type BatchSource, deviceBatches, hostBatches } from "./device_batches.ts";
import { StepCapturePolicy } from "./step_capture_policy.ts";
import {
  DEFAULT_READ_BACK,
  PendingMetrics,
  type ReadBackPolicy,
  type StepMetrics,
} from "./pending_metrics.ts";
import { evaluate } from "./validation.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

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
  /** How often the steps' loss and accuracy are read back (default DEFAULT_READ_BACK). */
  readBack?: ReadBackPolicy;
  /** Keep the training split on the device and gather batches there (default true). */
  residentData?: boolean;
  /** The tile plan the model's ops run under (autotune_model.ts; default: the adapter's). */
  tiles?: TilePlan;
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
  model.tiles = opts.tiles;
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
  batches: BatchSource;
  capture: StepCapturePolicy;
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
  const { state, history } = await startingState(
    cfg,
    opts.outDir,
    model,
    optimizer,
    opts.resume,
  );
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
    batches: (opts.residentData ?? true) ? deviceBatches(data.train) : hostBatches(data.train),
    capture: new StepCapturePolicy(
      cfg.capture ?? "on",
      optimizer instanceof FusedAdam ? null : "--optimizer tfjs uploads the learning rate as a " +
        "constant that a schedule changes (FusedAdam passes it as a step input)",
    ),
  };
  opts.log(ctx.capture.status());
  try {
    return await epochs(ctx, state, history, schedules, optimizer);
  } finally {
    ctx.capture.dispose();
    ctx.batches.dispose();
  }
}

async function epochs(
  ctx: RunContext,
  startState: LoopState,
  history: EpochRecord[],
  schedules: Schedules,
  optimizer: tf.Optimizer,
): Promise<TrainResult> {
  const { cfg, opts, model } = ctx;
  let state = startState;
  const save = checkpointSaver(opts.outDir, cfg, model, optimizer);
  const result = (stoppedEarly: boolean, interrupted: boolean): TrainResult => ({
    ...summary(history, schedules.early),
    stoppedEarly,
    interrupted,
    model,
  });
  let stoppedEarly = false;

  let firstEpoch = true; // of this process (a resumed run starts later)
  while (!state.done && state.epoch < cfg.epochs) {
    state.lr = schedules.lrAt(state.epoch, state.lr);
    setLearningRate(optimizer, state.lr);
    const captureBefore = ctx.capture.status();
    const epoch = await trainEpoch(ctx, state);
    // Which path the steps took: once captured (or refused), and whenever that changes.
    const captureNow = ctx.capture.status();
    const changed = firstEpoch
      ? captureNow !== captureBefore
      : captureNow.split(":")[0] !== captureBefore.split(":")[0];
    firstEpoch = false;
    if (changed) {
      opts.progress.clear();
      opts.log(captureNow);
    }
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
 *
 * Pipelined: each step is encoded and submitted without waiting for the device; the steps'
 * loss and correct counts are read back together every few steps (PendingMetrics), and the
 * running sums, progress lines and NaN check then take them in step order. A stop request is
 * still polled after every step; the steps taken so far are read back before it returns.
 */
async function trainEpoch(ctx: RunContext, state: LoopState): Promise<EpochOutcome> {
  const { cfg, data, opts } = ctx;
  const e = state.epoch;
  const order = batchIterator(data.trainIdx, cfg.batch, createRng(deriveSeed(cfg.seed, 5, e)));
  for (let i = 0; i < state.step; i++) order.next(); // resume mid-epoch
  const running = { ...state.running };
  let stepInEpoch = state.step;
  let recorded = state.step;
  const epochStart = performance.now() - running.timeS * 1000;
  let lastRead = performance.now();
  const pending = new PendingMetrics(opts.readBack ?? DEFAULT_READ_BACK);
  const record = async () => {
    const metrics = await pending.drain();
    assertDeviceOk();
    const now = performance.now();
    const images = metrics.reduce((a, m) => a + m.images, 0);
    const intervalS = (now - lastRead) / 1000;
    lastRead = now;
    for (const m of metrics) {
      checkFinite(ctx, state, m);
      running.lossSum += m.loss * m.images;
      running.correct += m.correct;
      running.seen += m.images;
      recorded = m.step + 1;
      const elapsed = (now - epochStart) / 1000;
      opts.progress.step({
        epoch: e + 1,
        epochs: cfg.epochs,
        step: recorded,
        steps: ctx.stepsPerEpoch,
        loss: running.lossSum / running.seen,
        acc: running.correct / running.seen,
        imagesPerS: images / Math.max(intervalS, 1e-9),
        etaS: (elapsed / recorded) * (ctx.stepsPerEpoch - recorded),
      });
    }
  };
  try {
    for (const idx of order) {
      const { loss, correct } = encodeStep(ctx, state, stepInEpoch, idx);
      submitPending(); // the device starts now; on lavapipe this waits for the previous step
      pending.push(stepInEpoch, idx.length, loss, correct);
      stepInEpoch++;
      state.globalStep++;
      if (pending.due()) await record();
      if (await stopRequestedAfterStep(opts) && stepInEpoch < ctx.stepsPerEpoch) {
        await record();
        running.timeS = (performance.now() - epochStart) / 1000;
        return { interrupted: true, running, stepsDone: stepInEpoch };
      }
    }
    await record();
  } finally {
    pending.dispose();
  }
  running.timeS = (performance.now() - epochStart) / 1000;
  return { interrupted: false, running };
}

/** Gives a pending signal listener a macrotask turn, then polls `stopRequested`. */
async function stopRequestedAfterStep(opts: LoopOptions): Promise<boolean> {
  await new Promise((r) => setTimeout(r, 0));
  return opts.stopRequested?.() ?? false;
}

/** Encodes one optimizer step on the batch `idx`; its loss and correct count stay on the device. */
function encodeStep(
  ctx: RunContext,
  state: LoopState,
  stepInEpoch: number,
  idx: Int32Array,
): { loss: tf.Scalar; correct: tf.Scalar } {
  const { cfg, model } = ctx;
  const e = state.epoch;
  model.rng.state = deriveSeed(cfg.seed, 4, e, stepInEpoch);
  ctx.batches.check(idx); // a replay does not run batch(), which checks too
  // A replay (src/train/step_capture_policy.ts) writes idx and the other step inputs and runs
  // the recorded kernels; otherwise the step runs through tfjs.
  const [loss, correct] = ctx.capture.run(
    String(idx.length),
    { [BATCH_INDICES]: idx },
    () =>
      tf.tidy(() => {
        const batch = ctx.batches.batch(idx);
        let x = batch.x;
        if (cfg.augment) x = augmentBatch(x, new Rng(deriveSeed(cfg.seed, 3, e, stepInEpoch)));
        const r = ctx.step(x, batch.y);
        return [r.loss, r.correct];
      }),
  );
  return { loss: loss as tf.Scalar, correct: correct as tf.Scalar };
}

/** A non-finite loss stops the run: DivergedError naming the step. */
function checkFinite(ctx: RunContext, state: LoopState, m: StepMetrics): void {
  if (Number.isFinite(m.loss)) return;
  const e = state.epoch;
  ctx.opts.progress.clear();
  throw new DivergedError(
    `loss became ${m.loss} at epoch ${e + 1} step ${m.step + 1}: training stopped. ` +
      (e > 0
        ? `The last good checkpoint (end of epoch ${e}) is in ${ctx.opts.outDir}/checkpoints/last`
        : "No checkpoint was written yet") +
      ` (try a lower --lr, now ${state.lr.toPrecision(3)})`,
  );
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
