// A training step only encodes its work: no read-back of any kind (readSync/dataSync, a buffer
// map) and no queue submit inside the step call; `submitPending` then submits it as one command
// buffer. Why: on lavapipe a submit made while an earlier one still runs blocks until it ends
// (src/tf/submit.ts), so tfjs's mid-step submits made the step call wait for the device.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { createModel } from "../src/model/model.ts";
import { createAdam } from "../src/train/optimizer.ts";
import { makeTrainStepWithMetrics } from "../src/train/step.ts";
import { deferSubmits, submitPending } from "../src/tf/submit.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";

interface Spied {
  readSync: number;
  dataSync: number;
  mapAsync: number;
  submit: number;
}

/** Counts every synchronous and asynchronous read path and every submit while `fn` runs. */
function spy<T>(fn: () => T): { result: T; calls: Spied } {
  const calls: Spied = { readSync: 0, dataSync: 0, mapAsync: 0, submit: 0 };
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const queue: GPUQueue = backend.device.queue;
  const restore: (() => void)[] = [];
  const wrap = (obj: Record<string, unknown>, name: string, key: keyof Spied) => {
    const original = obj[name] as (...a: unknown[]) => unknown;
    obj[name] = function (this: unknown, ...a: unknown[]) {
      calls[key]++;
      return original.apply(this, a);
    };
    restore.push(() => obj[name] = original);
  };
  wrap(backend, "readSync", "readSync");
  wrap(tf.Tensor.prototype as unknown as Record<string, unknown>, "dataSync", "dataSync");
  wrap(GPUBuffer.prototype as unknown as Record<string, unknown>, "mapAsync", "mapAsync");
  wrap(queue as unknown as Record<string, unknown>, "submit", "submit");
  try {
    return { result: fn(), calls };
  } finally {
    for (const r of restore.reverse()) r();
  }
}

Deno.test({
  name: "an enhanced training step encodes only: no read-back, no submit until submitPending",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const model = createModel("enhanced", { ops: "fused", seed: 3, l2: 1e-4 });
    const opt = createAdam(model, 1e-3);
    const step = makeTrainStepWithMetrics(model, opt);
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
    const oneHot = new Float32Array(40);
    [1, 7, 3, 0].forEach((label, row) => oneHot[row * 10 + label] = 1);
    const y = tf.tensor2d(oneHot, [4, 10]);
    try {
      // The first step compiles the pipelines; the spied ones run warm, as in training.
      const first = step(x, y);
      await first.loss.data();
      tf.dispose([first.loss, first.correct]);
      for (let i = 0; i < 2; i++) {
        const { result, calls } = spy(() => step(x, y));
        assert.deepEqual(calls, { readSync: 0, dataSync: 0, mapAsync: 0, submit: 0 });
        const submitted = spy(() => submitPending());
        assert.equal(submitted.calls.submit, 1, "one command buffer per step");
        const loss = (await result.loss.data())[0];
        const correct = (await result.correct.data())[0];
        assert.ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
        assert.ok(Number.isInteger(correct) && correct >= 0 && correct <= 4, `correct ${correct}`);
        tf.dispose([result.loss, result.correct]);
      }
      // With nothing encoded, submitPending submits nothing.
      assert.equal(spy(() => submitPending()).calls.submit, 0);
    } finally {
      tf.dispose([x, y]);
      opt.dispose();
      model.dispose();
    }
  },
});

Deno.test({
  name: "deferSubmits restores tfjs's submit batch size, also when its work throws",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const flag = "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE";
    const before = tf.env().get(flag);
    assert.equal(deferSubmits(() => tf.env().get(flag)), Number.POSITIVE_INFINITY);
    assert.throws(() =>
      deferSubmits(() => {
        throw new Error("boom");
      }), /boom/);
    assert.equal(tf.env().get(flag), before);
    // Work left encoded by a step is submitted by the next read-back.
    const t = deferSubmits(() => tf.add(tf.scalar(1), tf.scalar(2)));
    assert.equal((await t.data())[0], 3);
    t.dispose();
  },
});
