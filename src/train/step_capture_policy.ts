// When the training loop replays a captured step (src/tf/step_capture.ts) and when it runs the
// step through tfjs. Per run, the first batch size seen is the captured one: its first
// WARMUP_STEPS steps run plainly (pipelines compiled, src/tf/dispatch_cache.ts's uniform
// buffers made: a uniform gets its own buffer the second time its bytes are seen), the next
// two are recorded while they run for real and compared, and the later ones replay the second
// recording. Another batch size (the epoch's last, partial batch) runs plainly; since it
// re-assigns the weights, the capture no longer matches them and is recorded again (two
// recorded steps) at the next full batch. Two recordings that differ, or a step that cannot be
// replayed, switch capture off for the run, with the reason in `status()`.
// Two matching recordings prove only that the stream holds still while host values do: one that
// changes later in the run (the learning rate of a schedule) must reach the device as a step
// input (src/tf/step_inputs.ts), as FusedAdam's does; tf.train.adam uploads it as a constant, so
// the loop refuses capture with --optimizer tfjs.

import type * as tf from "@tensorflow/tfjs-core";
import {
  captureBackend,
  CapturedStep,
  compareRecordings,
  type Recording,
  recordStep,
} from "../tf/step_capture.ts";
import type { StepValues } from "../tf/step_inputs.ts";

export type CaptureMode = "on" | "off";
export const CAPTURE_MODES: readonly CaptureMode[] = ["on", "off"];

/** Plain steps before the first recording. */
export const WARMUP_STEPS = 2;

export interface CaptureCounts {
  plain: number;
  recorded: number;
  replayed: number;
  /** Captures made (more than one: re-recorded after a partial batch or a restore). */
  captures: number;
}

export class StepCapturePolicy {
  private key: string | null = null;
  private seen = 0;
  private first: Recording | null = null;
  private captured: CapturedStep | null = null;
  private refused: string | null;
  readonly counts: CaptureCounts = { plain: 0, recorded: 0, replayed: 0, captures: 0 };

  /** `unsupported`: why this run's steps cannot be replayed even if two of them match. */
  constructor(mode: CaptureMode, unsupported: string | null = null) {
    this.refused = mode === "off"
      ? "--capture off"
      : captureBackend() === null
      ? "not on the webgpu backend"
      : unsupported;
  }

  /**
   * One step: `encode` runs it through tfjs (returning its result tensors); a replay gets the
   * named step inputs from `args`. `key` names what the stream depends on besides the step
   * inputs (the batch size).
   */
  run(key: string, args: Record<string, StepValues>, encode: () => tf.Tensor[]): tf.Tensor[] {
    if (this.refused !== null) return this.plain(encode);
    this.key ??= key;
    if (key !== this.key) return this.plain(encode);
    if (this.captured) {
      const r = this.captured.replay(args);
      if (r) {
        this.counts.replayed++;
        return r;
      }
      this.drop(); // the variables moved: record again
    }
    if (this.seen < WARMUP_STEPS) {
      this.seen++;
      return this.plain(encode);
    }
    const { results, recording } = recordStep(encode);
    this.counts.recorded++;
    if (recording.failure) {
      this.refuse(recording.failure);
    } else if (this.first === null) {
      this.first = recording;
    } else {
      const differ = compareRecordings(this.first, recording);
      this.first = null;
      if (differ) {
        this.refuse(differ);
      } else {
        const step = CapturedStep.fromRecording(recording);
        if (typeof step === "string") this.refuse(step);
        else {
          this.captured = step;
          this.counts.captures++;
        }
      }
    }
    return results;
  }

  /** Which path the steps take, for train's output. */
  status(): string {
    if (this.refused !== null) return `step capture off: ${this.refused}`;
    if (this.captured) {
      return `step capture on: batch ${this.key} replayed (${this.captured.dispatchCount} ` +
        `dispatches per step, ${this.counts.replayed} replays, ${this.counts.captures} captures)`;
    }
    if (this.counts.plain + this.counts.recorded === 0) {
      return `step capture on: steps of one batch size replay from step ${WARMUP_STEPS + 3} on`;
    }
    return `step capture on: not captured yet (${this.counts.plain} plain, ` +
      `${this.counts.recorded} recorded steps)`;
  }

  /** Whether later steps of the captured batch size replay. */
  get active(): boolean {
    return this.captured !== null;
  }

  /** Dispatches one replay encodes (null before a capture). */
  get dispatchesPerReplay(): number | null {
    return this.captured?.dispatchCount ?? null;
  }

  dispose(): void {
    this.drop();
  }

  private plain(encode: () => tf.Tensor[]): tf.Tensor[] {
    this.counts.plain++;
    return encode();
  }

  private drop(): void {
    this.captured?.release();
    this.captured = null;
    this.first = null;
  }

  private refuse(why: string): void {
    this.drop();
    this.refused = why;
  }
}
