// Each step's loss and correct count stay on the device until a read-back takes several steps'
// values in one go, so the host encodes step k+1 while the device still runs step k (a read
// after every step drained the queue each time). The values are the same per-step scalars as
// before, read in step order: the running sums (float64, on the host), the progress lines and
// the NaN check see exactly what a per-step read saw, only up to one read interval later.

import * as tf from "@tensorflow/tfjs-core";
import { untilDeviceFailure } from "../tf/device_guard.ts";

export interface StepMetrics {
  /** 0-based step within the epoch. */
  step: number;
  /** Images in the step's batch. */
  images: number;
  loss: number;
  correct: number;
}

/** When to read back: after `steps` pending steps, or once `ms` passed since the last read. */
export interface ReadBackPolicy {
  steps: number;
  ms: number;
}

/** Every 16 steps, or 4 times a second (the progress bar's pace), whichever comes first. */
export const DEFAULT_READ_BACK: ReadBackPolicy = { steps: 16, ms: 250 };

interface Pending {
  step: number;
  images: number;
  loss: tf.Scalar;
  correct: tf.Scalar;
}

export class PendingMetrics {
  private pending: Pending[] = [];
  private lastRead = performance.now();

  constructor(private readonly policy: ReadBackPolicy = DEFAULT_READ_BACK) {
    if (!(policy.steps >= 1) || !(policy.ms >= 0)) {
      throw new Error(`read-back policy: steps >= 1 and ms >= 0, got ${JSON.stringify(policy)}`);
    }
  }

  /** Takes ownership of a step's loss and correct-count scalars. */
  push(step: number, images: number, loss: tf.Scalar, correct: tf.Scalar): void {
    this.pending.push({ step, images, loss, correct });
  }

  get size(): number {
    return this.pending.length;
  }

  /** Whether the policy asks for a read-back now. */
  due(): boolean {
    return this.pending.length >= this.policy.steps ||
      (this.pending.length > 0 && performance.now() - this.lastRead >= this.policy.ms);
  }

  /** Reads every pending step's values (one read-back) and disposes their tensors. */
  async drain(): Promise<StepMetrics[]> {
    const taken = this.pending;
    this.pending = [];
    if (taken.length === 0) return [];
    try {
      const packed = tf.tidy(() => tf.stack(taken.flatMap((p) => [p.loss, p.correct])));
      // A lost device can leave a read-back pending forever: race it against the guard.
      const values = await untilDeviceFailure(packed.data()).finally(() => packed.dispose());
      this.lastRead = performance.now();
      return taken.map((p, i) => ({
        step: p.step,
        images: p.images,
        loss: values[2 * i],
        correct: values[2 * i + 1],
      }));
    } finally {
      tf.dispose(taken.flatMap((p) => [p.loss, p.correct]));
    }
  }

  /** Disposes what is pending without reading it (an error path). */
  dispose(): void {
    tf.dispose(this.pending.flatMap((p) => [p.loss, p.correct]));
    this.pending = [];
  }
}
