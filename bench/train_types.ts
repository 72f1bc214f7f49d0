// Train-suite result types, kept apart from the suite so that reports and comparisons load
// without the model code (type imports only).

import type { ModelName, OpsKind } from "../src/model/model.ts";
import type { Stats } from "./timing.ts";

export interface TrainVariant {
  id: string;
  model: ModelName;
  ops: OpsKind;
}

/** Each model on our kernels (the default) and on stock tfjs ops, for the ratio between them. */
export const TRAIN_VARIANTS: TrainVariant[] = [
  { id: "baseline (fused)", model: "baseline", ops: "fused" },
  { id: "baseline --ops stock", model: "baseline", ops: "stock" },
  { id: "enhanced (fused)", model: "enhanced", ops: "fused" },
  { id: "enhanced --ops stock", model: "enhanced", ops: "stock" },
];

/** Training images per epoch with the default 10% validation split: what extrapolations use. */
export const EPOCH_IMAGES = 54000;

export interface TrainCase {
  id: string;
  variant: TrainVariant;
  batch: number;
  /** Time of one step (the clock named in stats.clock). */
  stats: Stats;
  imagesPerS: number;
  /** EPOCH_IMAGES / imagesPerS: steps only, no data loading. */
  epochSExtrapolated: number;
  /** With `limit`: a real pass over `limit` training images (data upload included). */
  subset: { images: number; seconds: number; epochSExtrapolated: number } | null;
  /** The same model's stock-op step time over this one's, at this batch (fused rows only). */
  speedupVsStock: number | null;
  /** Adam implementation: "fused" (AdamStep kernel) or "tfjs" (tf.train.adam). */
  optimizer: "fused" | "tfjs";
  /** WebGPU dispatches one step encodes (null on the cpu backend). */
  dispatchesPerStep: number | null;
  /** Median host time for the step call to return (everything encoded and submitted), ms. */
  hostIssueMs: number;
  /** Median wall time from the call to the loss read back, same runs, ms. */
  wallMs: number;
  /** Main-thread CPU per step (call to read-back), ms; absent in documents from before it. */
  mainCpuMs?: number;
  /** mainCpuMs per dispatch, ms. */
  mainCpuPerDispatchMs?: number | null;
  /** The same figures with the step captured (src/train/step_capture_policy.ts); null when it
   * was not captured (captureStatus says why); absent in documents from before capture. */
  captured?: CapturedFigures | null;
  captureStatus?: string;
}

export interface CapturedFigures {
  dispatchesPerStep: number;
  hostIssueMs: number;
  wallMs: number;
  mainCpuMs: number;
  mainCpuPerDispatchMs: number;
}
