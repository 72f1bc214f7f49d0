// Training steps through the fused op (forward kernel + our backward kernel) must not leak
// tensors: after warm-up, tf.memory() stays flat across steps, with an optimizer's minimize and
// with tf.variableGrads, on webgpu (the real path) and cpu (the reference kernels).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { convBnReluTrain } from "./conv_bn_relu.ts";

const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };
const STEPS = 50;
const WARMUP = 5;

function makeParams() {
  const filter = tf.variable(tf.randomNormal([3, 3, 4, 4], 0, 0.5, "float32", 1), true, "w");
  const gamma = tf.variable(tf.ones([4]), true, "gamma");
  const beta = tf.variable(tf.zeros([4]), true, "beta");
  const x = tf.randomUniform([2, 6, 5, 4], -1, 1, "float32", 2) as tf.Tensor4D;
  return { x, filter, gamma, beta };
}

type Params = ReturnType<typeof makeParams>;

function loss(p: Params): tf.Scalar {
  const r = convBnReluTrain(
    p.x,
    p.filter as tf.Tensor as tf.Tensor4D,
    p.gamma as tf.Tensor as tf.Tensor1D,
    p.beta as tf.Tensor as tf.Tensor1D,
    { strides: 1, pad: "same" },
  );
  // mean/variance are returned for the running averages; a model would use them, we drop them.
  return tf.mean(tf.square(tf.sub(r.y, 0.5)));
}

/**
 * Tensors the engine tracks plus buffers the backend holds: the kernels' intermediates (partial
 * sums, dz, the transposed filter) are backend-only TensorInfos that tf.memory() never sees.
 */
function snapshot() {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes, dataIds: tf.backend().numDataIds() };
}

/** Runs `step` STEPS times; returns memory after warm-up and at the end, and the losses. */
async function measure(step: () => tf.Scalar) {
  let warm = snapshot();
  const losses: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const l = step();
    losses.push((await l.data())[0]);
    l.dispose();
    if (i === WARMUP - 1) warm = snapshot();
  }
  return { warm, end: snapshot(), losses };
}

function assertFlat(label: string, r: Awaited<ReturnType<typeof measure>>) {
  assert.equal(r.end.numTensors, r.warm.numTensors, `${label}: numTensors grew`);
  assert.equal(r.end.numBytes, r.warm.numBytes, `${label}: numBytes grew`);
  assert.equal(r.end.dataIds, r.warm.dataIds, `${label}: backend buffers grew`);
  // The steps really trained: the loss went down (so gradients were non-zero and applied).
  assert.ok(r.losses[STEPS - 1] < r.losses[0], `${label}: loss did not decrease ${r.losses}`);
}

for (const backend of ["webgpu", "cpu"] as const) {
  Deno.test(
    `convBnReluTrain: no tensor leak over ${STEPS} training steps (${backend})`,
    GPU_TEST,
    async () => {
      await initTf(backend);
      if (backend === "webgpu") tf.env().set("WEBGPU_CPU_FORWARD", false);
      const p = makeParams();
      const before = tf.memory().numTensors;

      const optimizer = tf.train.sgd(0.1);
      const minimized = await measure(() => optimizer.minimize(() => loss(p), true)!);
      assertFlat(`${backend} sgd.minimize`, minimized);

      const vars = [p.filter, p.gamma, p.beta];
      const manual = await measure(() =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => loss(p), vars);
          for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.1)));
          return value;
        })
      );
      assertFlat(`${backend} variableGrads`, manual);

      optimizer.dispose();
      tf.dispose([p.x, p.filter, p.gamma, p.beta]);
      assert.equal(tf.memory().numTensors, before - 4, `${backend}: tensors left after dispose`);
    },
  );
}
