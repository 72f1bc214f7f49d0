// Captured training steps (src/tf/step_capture.ts, step_capture_policy.ts) against the same
// steps run through tfjs: bit-identical weights, Adam moments and beta powers, BN running
// statistics, losses and correct counts; no tensor or GPU buffer growth across replays; the
// fallbacks (another batch size, a restore of the weights, a per-step uniform).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { createModel, type Model, type ModelName } from "../model/model.ts";
import { createAdam, FusedAdam } from "./optimizer.ts";
import { makeTrainStepWithMetrics } from "./step.ts";
import { BATCH_INDICES, deviceBatches } from "./device_batches.ts";
import { type CaptureMode, StepCapturePolicy } from "./step_capture_policy.ts";
import type { Split } from "../data/fashion_mnist.ts";
import { GPU_TEST, initWebGpu } from "../../test/helpers/gpu.ts";
import { setDispatchCacheCapacity } from "../tf/dispatch_cache.ts";
import { submitPending } from "../tf/submit.ts";
import { trainingTest } from "../../test/helpers/train_fixtures.ts";
import { LOCAL_DATA_DIR } from "../../test/helpers/data_fixtures.ts";
import { loadFashionMnist } from "../data/fashion_mnist.ts";
import { resolveConfig } from "./config.ts";
import { prepareData, runTraining } from "./loop.ts";
import { createProgress } from "./progress.ts";

const COUNT = 64;

function fakeSplit(): Split {
  const images = new Uint8Array(COUNT * 784);
  let s = 12345;
  for (let i = 0; i < images.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    images[i] = s >>> 24;
  }
  const labels = Uint8Array.from({ length: COUNT }, (_, i) => (i * 7) % 10);
  return { images, labels, count: COUNT };
}

/** Batch sizes of the steps: full batches, a partial one (a fallback), full ones again. */
const PLAN = [8, 8, 8, 8, 8, 8, 8, 5, 8, 8, 8, 8];

function indices(step: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (step * 13 + i * 5) % COUNT);
}

interface Run {
  losses: number[];
  corrects: number[];
  weights: Map<string, Uint32Array>;
  betaPowers: [number, number, number];
  policy: StepCapturePolicy;
  memory: { tensors: number; bytes: number; allocated: number }[];
}

async function bits(t: tf.Tensor): Promise<Uint32Array> {
  return new Uint32Array((await t.data() as Float32Array).slice().buffer);
}

interface Options {
  /** Before this step, every trainable variable is assigned new values (a restore). */
  restoreAt?: number;
  /** A host value that changes per step reaches the device as a plain upload. */
  perStepUpload?: boolean;
  /** Between steps 4 and 6, the dispatch cache keeps two uniform buffers (evicting the rest). */
  evictUniforms?: boolean;
}

async function train(
  name: ModelName,
  dropout: number,
  mode: CaptureMode,
  { restoreAt = -1, perStepUpload = false, evictUniforms = false }: Options = {},
): Promise<Run> {
  const model: Model = createModel(name, { ops: "fused", seed: 3, l2: 1e-4, dropout });
  const opt = createAdam(model, 1e-3) as FusedAdam;
  const step = makeTrainStepWithMetrics(model, opt);
  const batches = deviceBatches(fakeSplit());
  const policy = new StepCapturePolicy(mode);
  const losses: number[] = [], corrects: number[] = [];
  const memory: Run["memory"] = [];
  const held: tf.Tensor[] = [];
  const pool = (tf.backend() as unknown as { bufferManager: { numBytesAllocated: number } })
    .bufferManager;
  try {
    for (let k = 0; k < PLAN.length; k++) {
      if (k === restoreAt) {
        // What a checkpoint restore does: every variable assigned fresh values.
        for (const v of model.trainableVariables) v.assign(tf.tidy(() => tf.mul(v, 0.5)));
      }
      if (k === 5) opt.learningRate = 5e-4; // a schedule's change, between replays
      if (evictUniforms && k === 5) {
        setDispatchCacheCapacity(2);
        // Ops with uniforms of their own (new shapes) push the step's out of the LRU; each runs
        // twice, since the cache gives bytes a buffer of their own the second time it sees them.
        for (let n = 0; n < 80; n++) {
          tf.dispose(tf.tidy(() => tf.add(tf.ones([1 + (n >> 1), 3]), 1)));
        }
        submitPending();
      }
      if (evictUniforms && k === 7) setDispatchCacheCapacity(4096);
      const idx = indices(k, PLAN[k]);
      model.rng.state = 1000 + k;
      const [loss, correct] = policy.run(
        String(idx.length),
        { [BATCH_INDICES]: idx },
        () =>
          tf.tidy(() => {
            const b = batches.batch(idx);
            if (perStepUpload) tf.mul(b.x, k); // the scalar k: uploaded bytes that change
            const r = step(b.x, b.y);
            return [r.loss, r.correct];
          }),
      );
      // Held across later steps, as the loop's PendingMetrics holds them: a buffer the
      // capture does not own could be handed to these and then overwritten by a replay.
      held.push(loss, correct);
      // What a checkpoint does between steps: read every variable (tfjs caches the values).
      if (k === 4 || k === 10) {
        for (const v of model.variables) await v.variable.data();
        tf.dispose((await opt.getWeights()).map((w) => w.tensor));
      }
      memory.push({
        tensors: tf.memory().numTensors - held.length,
        bytes: tf.memory().numBytes - 8 * held.length / 2,
        allocated: pool.numBytesAllocated,
      });
    }
    for (let k = 0; k < held.length; k += 2) {
      losses.push((await held[k].data())[0]);
      corrects.push((await held[k + 1].data())[0]);
    }
    // Names without the model's own prefix (model1/, model2/, ...).
    const local = (n: string) => n.replace(/^model\d+\//, "");
    const weights = new Map<string, Uint32Array>();
    for (const v of model.variables) weights.set(local(v.variable.name), await bits(v.variable));
    for (const w of await opt.getWeights()) {
      weights.set(`optimizer ${local(w.name)}`, await bits(w.tensor));
      w.tensor.dispose();
    }
    return {
      losses,
      corrects,
      weights,
      betaPowers: [opt.accBeta1, opt.accBeta2, opt.iterations],
      policy,
      memory,
    };
  } finally {
    tf.dispose(held);
    policy.dispose();
    batches.dispose();
    opt.dispose();
    model.dispose();
  }
}

function assertSameBits(plain: Run, captured: Run) {
  assert.deepEqual(captured.losses, plain.losses);
  assert.deepEqual(captured.corrects, plain.corrects);
  assert.deepEqual(captured.betaPowers, plain.betaPowers);
  assert.deepEqual([...captured.weights.keys()], [...plain.weights.keys()]);
  for (const [name, w] of plain.weights) {
    const c = captured.weights.get(name)!;
    const at = w.findIndex((x, i) => x !== c[i]);
    assert.equal(at, -1, `${name}: element ${at} differs`);
  }
}

// enhanced with its default dropout (0.3: two masks per step, seeds drawn per step).
for (const [name, dropout] of [["baseline", 0], ["enhanced", 0.3]] as const) {
  Deno.test({
    name: `capture: ${name} steps replayed equal the uncaptured ones bit for bit`,
    ...GPU_TEST,
    fn: async () => {
      await initWebGpu();
      const plain = await train(name, dropout, "off");
      const captured = await train(name, dropout, "on");
      assert.equal(plain.policy.counts.replayed, 0);
      // 2 plain + 2 recorded + 3 replays, the partial batch plain, 2 recorded again + 2 replays.
      assert.deepEqual(captured.policy.counts, { plain: 3, recorded: 4, replayed: 5, captures: 2 });
      assertSameBits(plain, captured);
      // Flat across replays: tensors, tensor bytes and the buffers tfjs ever allocated.
      const replays = captured.memory.slice(4, 7);
      assert.deepEqual(replays.map((m) => m.tensors), replays.map(() => replays[0].tensors));
      assert.deepEqual(replays.map((m) => m.bytes), replays.map(() => replays[0].bytes));
      assert.deepEqual(replays.map((m) => m.allocated), replays.map(() => replays[0].allocated));
    },
  });
}

Deno.test({
  name: "capture: a restore of the weights between replays records again, results unchanged",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const plain = await train("enhanced", 0.3, "off", { restoreAt: 5 });
    const captured = await train("enhanced", 0.3, "on", { restoreAt: 5 });
    // Replays at steps 4 and 6 (the restore at 5 sends step 5 back to recording) ...
    assert.ok(captured.policy.counts.captures >= 2);
    assertSameBits(plain, captured);
  },
});

Deno.test({
  name: "capture: uniform buffers the dispatch cache evicts stay alive for the replays",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    try {
      const plain = await train("baseline", 0, "off", { evictUniforms: true });
      const captured = await train("baseline", 0, "on", { evictUniforms: true });
      assert.deepEqual(captured.policy.counts, { plain: 3, recorded: 4, replayed: 5, captures: 2 });
      assertSameBits(plain, captured);
    } finally {
      setDispatchCacheCapacity(4096);
    }
  },
});

Deno.test({
  name: "capture: a per-step upload that is not a step input refuses the capture, with the reason",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const plain = await train("baseline", 0, "off", { perStepUpload: true });
    const r = await train("baseline", 0, "on", { perStepUpload: true });
    assert.equal(r.policy.counts.replayed, 0);
    assert.match(r.policy.status(), /^step capture off: two steps differ: op \d+: upload .*bytes/);
    assertSameBits(plain, r);
  },
});

trainingTest(
  "capture: train runs with --capture on and off give the same history and weights, and say which",
  async (out) => {
    const data = await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
    const run = async (capture: CaptureMode) => {
      // 630 training images at batch 64: 9 full batches and a partial one per epoch.
      const cfg = resolveConfig({}, { model: "enhanced", limit: 700, batch: 64, epochs: 2 });
      const dir = `${out}/${capture}`;
      await Deno.mkdir(`${dir}/checkpoints`, { recursive: true });
      const lines: string[] = [];
      const r = await runTraining({ ...cfg, capture }, prepareData(data, cfg), {
        outDir: dir,
        progress: createProgress({ quiet: true, write: () => {} }),
        log: (m) => lines.push(m),
      });
      const weights = await Promise.all(r.model.variables.map((v) => v.variable.data()));
      r.model.dispose();
      return { history: r.history.map(({ epochTimeS: _, ...h }) => h), weights, lines };
    };
    const on = await run("on");
    const off = await run("off");
    assert.deepEqual(on.history, off.history);
    assert.deepEqual(on.weights, off.weights);
    assert.ok(on.lines.includes("step capture on: steps of one batch size replay from step 5 on"));
    assert.ok(
      on.lines.some((l) => /^step capture on: batch 64 replayed \(\d+ dispatches/.test(l)),
      on.lines.join("\n"),
    );
    assert.ok(off.lines.includes("step capture off: --capture off"), off.lines.join("\n"));
  },
);
