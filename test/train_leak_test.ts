// 50 training steps of each model on the training path (our conv ops, pooling, dropout, fused
// Adam, fused loss and moving averages, webgpu) keep tensors, bytes and backend buffers flat.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../src/tf/setup.ts";
import { createModel } from "../src/model/model.ts";
import { makeTrainStepWithMetrics } from "../src/train/step.ts";
import { createAdam, FusedAdam } from "../src/train/optimizer.ts";
import { augmentBatch } from "../src/train/augment.ts";
import { Rng } from "../src/random.ts";

const STEPS = 50;
const WARMUP = 5;

/** Engine tensors and bytes, backend data ids (kernel intermediates) and GPU buffers in use. */
function snapshot() {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  const backend = tf.backend() as unknown as {
    numDataIds(): number;
    bufferManager: { getNumUsedBuffers(): number };
  };
  return {
    numTensors: m.numTensors,
    numBytes: m.numBytes,
    dataIds: backend.numDataIds(),
    gpuBytes: m.numBytesInGPU,
    gpuBuffers: backend.bufferManager.getNumUsedBuffers(),
  };
}

for (const name of ["enhanced", "baseline"] as const) {
  Deno.test({
    name: `train: no leaks over 50 ${name} steps (fused ops, fused Adam, dropout) on webgpu`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await initTf("webgpu");
      const model = createModel(name, { ops: "fused", seed: 1, l2: 1e-4, dropout: 0.3 });
      const optimizer = createAdam(model, 1e-3);
      assert.ok(optimizer instanceof FusedAdam);
      const step = makeTrainStepWithMetrics(model, optimizer, { labelSmoothing: 0.1 });
      const x = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
      const y = tf.tidy(() =>
        tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10)
      ) as tf.Tensor2D;
      const rng = new Rng(1);
      const losses: number[] = [];
      let warm = snapshot();
      for (let i = 0; i < STEPS; i++) {
        const xa = augmentBatch(x, rng);
        const { loss, correct } = step(xa, y);
        losses.push((await loss.data())[0]);
        await correct.data();
        tf.dispose([loss, correct, xa]);
        if (i === WARMUP - 1) warm = snapshot(); // Adam's state exists after the first step
      }
      assert.deepEqual(snapshot(), warm, "memory after warm-up vs after 50 steps");
      assert.ok(losses.every(Number.isFinite));
      assert.ok(
        losses[STEPS - 1] < losses[0],
        `loss ${losses[0]} -> ${losses.at(-1)} (fixed batch)`,
      );
      tf.dispose([x, y]);
      optimizer.dispose();
      model.dispose();
    },
  });
}
