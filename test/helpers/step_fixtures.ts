// Fixtures of the tests that train a few steps two ways and compare the weights bit for bit
// (dispatch_cache_test.ts, step_host_test.ts).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { createModel, type Model, type ModelName } from "../../src/model/model.ts";
import { createAdam } from "../../src/train/optimizer.ts";
import { makeTrainStepWithMetrics } from "../../src/train/step.ts";

/** `n` images ~ U(0, 1) from `seed`; row r's label is (r * labelStride) % 10, one-hot. */
export function fixedBatch(
  n: number,
  seed: number,
  labelStride: number,
): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = tf.randomUniform([n, 28, 28, 1], 0, 1, "float32", seed) as tf.Tensor4D;
  const oneHot = new Float32Array(n * 10);
  for (let r = 0; r < n; r++) oneHot[r * 10 + (r * labelStride) % 10] = 1;
  return { x, y: tf.tensor2d(oneHot, [n, 10]) };
}

/**
 * `name` with fused ops, dropout 0.3 and L2 1e-4 from `seed`, our Adam, and `step()`: its
 * metrics step on `batch` (tidied: loss and correct come back); `dispose` frees the batch and
 * the optimizer's state (the model stays for the caller).
 */
export function trainingStep(
  name: ModelName,
  seed: number,
  batch: { x: tf.Tensor4D; y: tf.Tensor2D },
) {
  const model = createModel(name, { ops: "fused", seed, l2: 1e-4, dropout: 0.3 });
  const opt = createAdam(model, 1e-3);
  const step = makeTrainStepWithMetrics(model, opt);
  return {
    model,
    step: () =>
      tf.tidy(() => {
        const r = step(batch.x, batch.y);
        return [r.loss, r.correct];
      }),
    dispose: () => {
      tf.dispose([batch.x, batch.y]);
      opt.dispose();
    },
  };
}

/** Every variable of `a` equals `b`'s bit for bit (Object.is); names the first difference. */
export async function assertSameWeights(a: Model, b: Model): Promise<void> {
  const values = (m: Model) =>
    Promise.all(m.variables.map(async (v) => (await v.variable.data()) as Float32Array));
  const [va, vb] = [await values(a), await values(b)];
  va.forEach((w, i) => {
    const k = w.findIndex((v, j) => !Object.is(v, vb[i][j]));
    assert.equal(k, -1, `${a.variables[i].name}[${k}]: ${w[k]} vs ${vb[i][k]}`);
  });
}
