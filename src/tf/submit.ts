// When a training step's work reaches the queue.
//
// tfjs-webgpu submits its command encoder every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE (15)
// dispatches. On a hardware adapter queue.submit returns at once; on Mesa's lavapipe (22.3,
// Debian 12) vkQueueSubmit executes the command buffer before it returns, on the calling thread
// (which waits on llvmpipe's workers). So on lavapipe an `enhanced` step (56 dispatches) ran
// three quarters of its kernels inside the step call: at batch 128 its first mid-step submit
// alone took 178 ms of the 222 ms the call took, while `baseline` (26 dispatches: one mid-step
// submit of cheap layers) returned after ~10 ms. No read-back happens in a step (test/
// step_submit_test.ts spies on every read path).
//
// `deferSubmits` runs a step with the batch size raised, so the step only encodes; its work is
// submitted as one command buffer by `submitPending` (the training loop calls it right after the
// step, so a hardware GPU starts at once) or by the next read-back, which submits first. At most
// one step stays unsubmitted: once the flag is restored, the next dispatch of any other work
// finds the pass past the batch size and submits everything.

import * as tf from "@tensorflow/tfjs-core";

const FLAG = "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE";

interface SubmittingBackend {
  commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

function webgpuBackend(): SubmittingBackend | null {
  return tf.getBackend() === "webgpu" ? tf.backend() as unknown as SubmittingBackend : null;
}

/** Runs `fn` (tensor work) with no submit until it returns; nests. */
export function deferSubmits<T>(fn: () => T): T {
  if (webgpuBackend() === null) return fn();
  const env = tf.env();
  const previous = env.get(FLAG) as number;
  env.set(FLAG, Number.POSITIVE_INFINITY);
  try {
    return fn();
  } finally {
    env.set(FLAG, previous);
  }
}

/** Submits the work encoded so far (nothing when none is pending or off webgpu). */
export function submitPending(): void {
  const backend = webgpuBackend();
  if (!backend?.commandEncoder) return;
  backend.endComputePassEncoder(); // finish() refuses an encoder with an open pass
  backend.submitQueue();
}
