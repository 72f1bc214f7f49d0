// The training loop: epochs of shuffled mini-batches, validation each epoch, LR schedule, early
// stopping, checkpoints (best + last) and history files, resumable mid-epoch.
//
// Reproducibility: every random draw comes from a stream derived from (seed, epoch, step): the
// epoch's shuffle, each step's augmentation and dropout. A resumed run therefore needs only
// (epoch, step) plus the weights and Adam state to continue bit-for-bit (on the CPU backend).

import * as tf from "@tensorflow/tfjs-core";
import { assertDeviceOk, untilDeviceFailure } from "../tf/device_guard.ts";
import {
  batchIterator,
  createRng,
  imagesToTensor,
  labelsToOneHot,
  limitSplit,
  stratifiedSplit,
} from "../data/dataset.ts";
import type { FashionMnist, Split } from "../data/fashion_mnist.ts";
import {
  type LoadedCheckpoint,
  readCheckpoint,
  restoreOptimizer,
  restoreWeights,
  saveCheckpoint,
} from "../model/checkpoint.ts";
import { createModel, type Model } from "../model/model.ts";
import { deriveSeed, Rng } from "../model/random.ts";
import { augmentBatch } from "./augment.ts";
import { createAdam } from "./optimizer.ts";
import type { TrainConfig } from "./config.ts";
import { historyCsv } from "./history.ts";
import type { Progress } from "./progress.ts";
import {
  cosineLr,
  EarlyStopping,
  type EarlyStoppingState,
  type PlateauState,
  ReduceOnPlateau,
} from "./schedule.ts";
import { countCorrect, crossEntropy, makeTrainStepWithMetrics } from "./step.ts";

export interface EpochRecord {
  epoch: number;
  loss: number;
  acc: number;
  valLoss: number;
  valAcc: number;
  lr: number;
  epochTimeS: number;
}

/** Loop state stored in checkpoints (`state`), enough to continue exactly. */
export interface LoopState {
  /** 0-based epoch in progress. */
  epoch: number;
  /** Steps already taken in that epoch. */
  step: number;
  globalStep: number;
  lr: number;
  /** Partial-epoch sums, so an interrupted epoch reports the same metrics when finished. */
  running: { lossSum: number; correct: number; seen: number; timeS: number };
  earlyStopping: EarlyStoppingState;
  plateau: PlateauState | null;
  /** Streams are derived from (seed, epoch, step); recorded for the reader. */
  rng: { seed: number; scheme: string };
  done: boolean;
}

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
  /** Polled after every step (SIGINT); true = save checkpoints/last and return. */
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

/** Adam, fused by default (src/train/optimizer.ts); `--optimizer tfjs` gives tf.train.adam. */
export function createOptimizer(cfg: TrainConfig, model: Model): tf.Optimizer {
  return createAdam(model, cfg.lr, cfg.optimizer ?? "fused");
}

/** Adam reads `learningRate` on every step, so the schedule can change it between epochs. */
export function setLearningRate(opt: tf.Optimizer, lr: number) {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}

/** Mean loss and accuracy over `indices`, inference mode, in batches of 500. */
export async function evaluate(
  model: Model,
  split: Split,
  indices: Int32Array,
  batch = 500,
): Promise<{ loss: number; acc: number }> {
  if (indices.length === 0) return { loss: NaN, acc: NaN };
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < indices.length; start += batch) {
    const idx = indices.subarray(start, start + batch);
    const [l, c] = tf.tidy(() => {
      const x = imagesToTensor(split, idx);
      const y = labelsToOneHot(split, idx);
      const logits = model.apply(x, false);
      return [tf.mul(crossEntropy(y, logits), idx.length), countCorrect(logits, y)];
    });
    lossSum += (await l.data())[0];
    correct += (await c.data())[0];
    tf.dispose([l, c]);
  }
  return { loss: lossSum / indices.length, acc: correct / indices.length };
}

function initialState(cfg: TrainConfig): LoopState {
  return {
    epoch: 0,
    step: 0,
    globalStep: 0,
    lr: cfg.schedule === "cosine" ? cosineLr(0, cfg.epochs, cfg.lr) : cfg.lr,
    running: { lossSum: 0, correct: 0, seen: 0, timeS: 0 },
    earlyStopping: new EarlyStopping(cfg.patience).state,
    plateau: cfg.schedule === "plateau" ? new ReduceOnPlateau(cfg.lr).state : null,
    rng: { seed: cfg.seed, scheme: "mulberry32(deriveSeed(seed, stream, epoch, step))" },
    done: false,
  };
}

export async function runTraining(
  cfg: TrainConfig,
  data: PreparedData,
  opts: LoopOptions,
): Promise<TrainResult> {
  const model = createModel(cfg.model, {
    ops: cfg.ops,
    seed: cfg.seed,
    dropout: cfg.dropout,
    l2: cfg.weightDecay,
  });
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

async function loop(
  cfg: TrainConfig,
  data: PreparedData,
  opts: LoopOptions,
  model: Model,
  optimizer: tf.Optimizer,
): Promise<TrainResult> {
  const ckDir = `${opts.outDir}/checkpoints`;
  let state = initialState(cfg);
  let history: EpochRecord[] = [];
  if (opts.resume) {
    restoreWeights(model, opts.resume);
    await restoreOptimizer(optimizer, model, opts.resume);
    state = { ...state, ...(opts.resume.meta.state as unknown as LoopState) };
    history = (await readHistory(opts.outDir)).filter((h) => h.epoch <= state.epoch);
    if (state.done && state.epoch < cfg.epochs) state.done = false; // --epochs raised
  }
  const early = new EarlyStopping(cfg.patience);
  early.state = { ...state.earlyStopping };
  const plateau = cfg.schedule === "plateau" ? new ReduceOnPlateau(cfg.lr) : null;
  if (plateau && state.plateau) plateau.state = { ...state.plateau };

  opts.log(
    `model ${cfg.model} (ops ${cfg.ops}): ${
      model.paramCount.toLocaleString("en-US")
    } parameters; ` +
      `${data.trainIdx.length} training / ${data.valIdx.length} validation images`,
  );
  const step = makeTrainStepWithMetrics(model, optimizer, { labelSmoothing: cfg.labelSmoothing });
  const stepsPerEpoch = Math.ceil(data.trainIdx.length / cfg.batch);
  const save = (dir: string, s: LoopState) =>
    saveCheckpoint(`${ckDir}/${dir}`, model, {
      config: cfg as unknown as Record<string, unknown>,
      optimizer,
      state: s as unknown as Record<string, unknown>,
    });
  let stoppedEarly = false;

  while (!state.done && state.epoch < cfg.epochs) {
    const e = state.epoch;
    // Cosine is a function of (epoch, epochs): recomputed, so a resume with more --epochs works.
    if (cfg.schedule === "cosine") state.lr = cosineLr(e, cfg.epochs, cfg.lr);
    setLearningRate(optimizer, state.lr);
    const order = batchIterator(data.trainIdx, cfg.batch, createRng(deriveSeed(cfg.seed, 5, e)));
    for (let i = 0; i < state.step; i++) order.next(); // resume mid-epoch
    const run = { ...state.running };
    let stepInEpoch = state.step;
    const epochStart = performance.now() - run.timeS * 1000;
    for (const idx of order) {
      const t0 = performance.now();
      const [lossT, correctT] = tf.tidy(() => {
        let x = imagesToTensor(data.train, idx);
        const y = labelsToOneHot(data.train, idx);
        if (cfg.augment) x = augmentBatch(x, new Rng(deriveSeed(cfg.seed, 3, e, stepInEpoch)));
        model.rng.state = deriveSeed(cfg.seed, 4, e, stepInEpoch);
        const r = step(x, y);
        return [r.loss, r.correct];
      });
      // A lost device can leave a read-back pending forever: race it against the guard.
      const loss = (await untilDeviceFailure(lossT.data()))[0];
      const correct = (await untilDeviceFailure(correctT.data()))[0];
      tf.dispose([lossT, correctT]);
      assertDeviceOk();
      if (!Number.isFinite(loss)) {
        opts.progress.clear();
        throw new DivergedError(
          `loss became ${loss} at epoch ${e + 1} step ${stepInEpoch + 1}: training stopped. ` +
            (e > 0
              ? `The last good checkpoint (end of epoch ${e}) is in ${ckDir}/last`
              : "No checkpoint was written yet") +
            ` (try a lower --lr, now ${state.lr.toPrecision(3)})`,
        );
      }
      stepInEpoch++;
      state.globalStep++;
      run.lossSum += loss * idx.length;
      run.correct += correct;
      run.seen += idx.length;
      const elapsed = (performance.now() - epochStart) / 1000;
      const stepS = (performance.now() - t0) / 1000;
      opts.progress.step({
        epoch: e + 1,
        epochs: cfg.epochs,
        step: stepInEpoch,
        steps: stepsPerEpoch,
        loss: run.lossSum / run.seen,
        acc: run.correct / run.seen,
        imagesPerS: idx.length / Math.max(stepS, 1e-9),
        etaS: (elapsed / stepInEpoch) * (stepsPerEpoch - stepInEpoch),
      });
      // A macrotask turn so a pending SIGINT listener can run between steps.
      await new Promise((r) => setTimeout(r, 0));
      if (opts.stopRequested?.() && stepInEpoch < stepsPerEpoch) {
        run.timeS = (performance.now() - epochStart) / 1000;
        state = { ...state, step: stepInEpoch, running: run };
        opts.progress.clear();
        await save("last", state);
        return { ...summary(history, early), stoppedEarly: false, interrupted: true, model };
      }
    }
    const epochTimeS = (performance.now() - epochStart) / 1000;
    const val = await evaluate(model, data.train, data.valIdx);
    const record: EpochRecord = {
      epoch: e + 1,
      loss: run.lossSum / run.seen,
      acc: run.correct / run.seen,
      valLoss: val.loss,
      valAcc: val.acc,
      lr: state.lr,
      epochTimeS,
    };
    history.push(record);
    // Without a validation split every epoch counts as the best (the latest weights).
    const { improved, stop } = Number.isNaN(val.acc)
      ? { improved: true, stop: false }
      : early.update(e + 1, val.acc);
    let nextLr = state.lr;
    if (cfg.schedule === "cosine") nextLr = cosineLr(e + 1, cfg.epochs, cfg.lr);
    if (plateau) nextLr = plateau.update(Number.isNaN(val.loss) ? record.loss : val.loss);
    stoppedEarly = stop;
    state = {
      ...state,
      epoch: e + 1,
      step: 0,
      lr: nextLr,
      running: { lossSum: 0, correct: 0, seen: 0, timeS: 0 },
      earlyStopping: { ...early.state },
      plateau: plateau ? { ...plateau.state } : null,
      done: stop || e + 1 >= cfg.epochs,
    };
    if (improved) await save("best", state);
    await save("last", state);
    await writeHistory(opts.outDir, history);
    opts.progress.epochEnd({ ...record, epochs: cfg.epochs, best: improved });
    if (opts.stopRequested?.() && !state.done) {
      return { ...summary(history, early), stoppedEarly: false, interrupted: true, model };
    }
    if (stop) {
      opts.log(
        `early stopping: no validation-accuracy gain for ${cfg.patience} epochs ` +
          `(best ${early.state.best.toFixed(4)} at epoch ${early.state.bestEpoch})`,
      );
    }
  }
  // Leave the model holding the best weights (Keras restore_best_weights).
  const best = await readCheckpoint(`${ckDir}/best`).catch(() => null);
  if (best) restoreWeights(model, best);
  return { ...summary(history, early), stoppedEarly, interrupted: false, model };
}

function summary(history: EpochRecord[], early: EarlyStopping) {
  const bestEpoch = early.state.bestEpoch > 0 ? early.state.bestEpoch : history.length;
  const bestValAcc = history.find((h) => h.epoch === bestEpoch)?.valAcc ?? NaN;
  return { history, bestEpoch, bestValAcc };
}

export async function readHistory(outDir: string): Promise<EpochRecord[]> {
  try {
    return JSON.parse(await Deno.readTextFile(`${outDir}/history.json`));
  } catch {
    return [];
  }
}

async function writeHistory(outDir: string, history: EpochRecord[]) {
  const enc = new TextEncoder();
  for (
    const [name, text] of [
      ["history.json", JSON.stringify(history, null, 1) + "\n"],
      ["history.csv", historyCsv(history)],
    ]
  ) {
    const tmp = `${outDir}/.${name}.tmp`;
    await Deno.writeFile(tmp, enc.encode(text));
    await Deno.rename(tmp, `${outDir}/${name}`);
  }
}
