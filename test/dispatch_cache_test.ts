// The per-dispatch caches (src/tf/dispatch_cache.ts): immutable uniform buffers keyed by their
// bytes and bind groups keyed by the layout and the buffers bound. Warm training steps hit them;
// the weights after several steps are bit-identical to tfjs's own path (caches off); tensors
// stay flat; the LRU bound destroys evicted uniform buffers only after a submit.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { Model } from "../src/model/model.ts";
import { submitPending } from "../src/tf/submit.ts";
import {
  installDispatchCache,
  setDispatchCacheCapacity,
  setDispatchCacheEnabled,
} from "../src/tf/dispatch_cache.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";
import { assertSameWeights, fixedBatch, trainingStep } from "./helpers/step_fixtures.ts";

const BATCH = 6;
const STEPS = 4;

async function train(name: "enhanced" | "baseline"): Promise<{ model: Model; tensors: number[] }> {
  const { model, step, dispose } = trainingStep(name, 9, fixedBatch(BATCH, 4, 3));
  const tensors: number[] = [];
  try {
    for (let i = 0; i < STEPS; i++) {
      model.rng.state = 1000 + i; // dropout masks differ per step: uniforms that vary
      const [loss, correct] = step();
      submitPending();
      assert.ok(Number.isFinite((await loss.data())[0]));
      tf.dispose([loss, correct]);
      tensors.push(tf.memory().numTensors);
    }
    return { model, tensors };
  } finally {
    dispose();
  }
}

for (const name of ["enhanced", "baseline"] as const) {
  Deno.test({
    name: `dispatch cache: ${name}'s warm steps hit it, weights bit-identical to tfjs's path`,
    ...GPU_TEST,
    fn: async () => {
      await initWebGpu();
      const stats = installDispatchCache()!;
      assert.ok(stats, "installed on webgpu");
      setDispatchCacheEnabled(false);
      let plain: Awaited<ReturnType<typeof train>> | undefined;
      try {
        plain = await train(name);
      } finally {
        setDispatchCacheEnabled(true);
      }
      const before = { ...stats };
      const cached = await train(name);
      try {
        await assertSameWeights(cached.model, plain.model);
        assert.ok(stats.uniformHits > before.uniformHits, "uniform buffers reused");
        assert.ok(stats.bindGroupHits > before.bindGroupHits, "bind groups reused");
        assert.deepEqual(new Set(cached.tensors.slice(1)).size, 1, `tensors ${cached.tensors}`);
      } finally {
        cached.model.dispose();
        plain.model.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "dispatch cache: a tiny capacity evicts within a step, destroys after the submit, same weights",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    installDispatchCache();
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    setDispatchCacheEnabled(false);
    let plain: Awaited<ReturnType<typeof train>> | undefined;
    try {
      plain = await train("enhanced");
    } finally {
      setDispatchCacheEnabled(true);
    }
    // 2 entries: every step evicts uniform buffers its own encoded, unsubmitted dispatches use.
    setDispatchCacheCapacity(2);
    device.pushErrorScope("validation");
    let tiny: Awaited<ReturnType<typeof train>> | undefined;
    try {
      tiny = await train("enhanced");
    } finally {
      setDispatchCacheCapacity(4096);
    }
    const error = await device.popErrorScope();
    try {
      assert.equal(error, null, `no use of a destroyed buffer: ${error?.message}`);
      await assertSameWeights(tiny.model, plain.model);
    } finally {
      tiny.model.dispose();
      plain.model.dispose();
    }
  },
});
