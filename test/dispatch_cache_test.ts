// The per-dispatch caches (src/tf/dispatch_cache.ts): immutable uniform buffers keyed by their
// bytes and bind groups keyed by the layout and the buffers bound. Warm training steps hit them;
// the weights after several steps are bit-identical to tfjs's own path (caches off); tensors
// stay flat; the LRU bound destroys evicted uniform buffers only after a submit.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { createModel, type Model } from "../src/model/model.ts";
import { createAdam } from "../src/train/optimizer.ts";
import { makeTrainStepWithMetrics } from "../src/train/step.ts";
import { submitPending } from "../src/tf/submit.ts";
import {
  installDispatchCache,
  setDispatchCacheCapacity,
  setDispatchCacheEnabled,
} from "../src/tf/dispatch_cache.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";

const BATCH = 6;
const STEPS = 4;

async function train(name: "enhanced" | "baseline"): Promise<{ model: Model; tensors: number[] }> {
  const model = createModel(name, { ops: "fused", seed: 9, l2: 1e-4, dropout: 0.3 });
  const opt = createAdam(model, 1e-3);
  const step = makeTrainStepWithMetrics(model, opt);
  const x = tf.randomUniform([BATCH, 28, 28, 1], 0, 1, "float32", 4) as tf.Tensor4D;
  const oneHot = new Float32Array(BATCH * 10);
  for (let r = 0; r < BATCH; r++) oneHot[r * 10 + (r * 3) % 10] = 1;
  const y = tf.tensor2d(oneHot, [BATCH, 10]);
  const tensors: number[] = [];
  try {
    for (let i = 0; i < STEPS; i++) {
      model.rng.state = 1000 + i; // dropout masks differ per step: uniforms that vary
      const [loss, correct] = tf.tidy(() => {
        const r = step(x, y);
        return [r.loss, r.correct];
      });
      submitPending();
      assert.ok(Number.isFinite((await loss.data())[0]));
      tf.dispose([loss, correct]);
      tensors.push(tf.memory().numTensors);
    }
    return { model, tensors };
  } finally {
    tf.dispose([x, y]);
    opt.dispose();
  }
}

async function values(m: Model): Promise<Float32Array[]> {
  return await Promise.all(m.variables.map(async (v) => (await v.variable.data()) as Float32Array));
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
        const [a, b] = [await values(cached.model), await values(plain.model)];
        a.forEach((w, i) => {
          const k = w.findIndex((v, j) => !Object.is(v, b[i][j]));
          assert.equal(k, -1, `${cached.model.variables[i].name}[${k}]: ${w[k]} vs ${b[i][k]}`);
        });
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
      const [a, b] = [await values(tiny.model), await values(plain.model)];
      a.forEach((w, i) => assert.equal(w.findIndex((v, j) => !Object.is(v, b[i][j])), -1));
    } finally {
      tiny.model.dispose();
      plain.model.dispose();
    }
  },
});
