// Host values that change from one training step to the next and reach the device as small
// tensors (the batch's indices, Adam's 1 - beta^t and -lr). A captured step
// (src/tf/step_capture.ts) replays a recorded step without running its host code, so each such
// value says where a replay gets it from: a named argument of the replay, or a function that
// computes it (and advances the host state the uncaptured step would have advanced).

import * as tf from "@tensorflow/tfjs-core";

export type StepValues = Int32Array | Float32Array;

/** Where a replay takes the value: `replay(args)`'s `args[name]`, or what `produce()` returns. */
export type StepInputSource = { name: string } | { produce: () => StepValues };

interface StepInputListener {
  stepInput(t: tf.Tensor, source: StepInputSource): void;
}

let listener: StepInputListener | null = null;

/** While a step is recorded, the recorder learns which tensors are step inputs (one at a time). */
export function listenToStepInputs(l: StepInputListener | null): void {
  if (l !== null && listener !== null) throw new Error("step inputs: two recorders at once");
  listener = l;
}

/** A 1-D tensor of this step's `values`; a replay refills it from `source`. */
export function stepInput(values: StepValues, source: StepInputSource): tf.Tensor1D {
  const t = tf.tensor1d(values, values instanceof Int32Array ? "int32" : "float32");
  listener?.stepInput(t, source);
  return t;
}
