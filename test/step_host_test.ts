// The host side of a training step: what a warm step costs the main thread besides encoding.
// tfjs's tape built a CPU zero tensor for every multi-output kernel output without a gradient
// (38.5 MB per enhanced step at batch 128); src/tf/side_output_grads.ts leaves those dys null
// for our kernels, whose gradients read only the first output's dy. Same weights bit for bit.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { Model, ModelName } from "../src/model/model.ts";
import { CONV_BN_RELU_TRAIN } from "../src/ops/conv_bn_relu/conv_bn_relu.ts";
import { CONV_BIAS_RELU_POOL2 } from "../src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { SOFTMAX_XENT } from "../src/ops/softmax_xent/softmax_xent.ts";
import {
  gradientsReadAllOutputs,
  gradientsReadFirstOutputOnly,
} from "../src/tf/side_output_grads.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";
import { assertSameWeights, fixedBatch, trainingStep } from "./helpers/step_fixtures.ts";

const KERNELS = [CONV_BN_RELU_TRAIN, CONV_BIAS_RELU_POOL2, SOFTMAX_XENT];
const BATCH = 6;

/** Bytes of tensors made from CPU values while `fn` runs (tfjs's makeTensor). */
function cpuTensorBytes<T>(fn: () => T): { result: T; bytes: number } {
  const engine = tf.engine() as unknown as { makeTensor: (v: unknown, ...r: unknown[]) => unknown };
  const original = engine.makeTensor;
  let bytes = 0;
  engine.makeTensor = function (this: unknown, values: unknown, ...rest: unknown[]) {
    bytes += (values as ArrayBufferView | undefined)?.byteLength ?? 0;
    return original.call(this, values, ...rest);
  };
  try {
    return { result: fn(), bytes };
  } finally {
    engine.makeTensor = original;
  }
}

async function trainTwoSteps(name: ModelName): Promise<{ model: Model; zeroBytes: number }> {
  const { model, step, dispose } = trainingStep(name, 5, fixedBatch(BATCH, 11, 7));
  let zeroBytes = 0;
  try {
    for (let i = 0; i < 2; i++) {
      model.rng.state = 100 + i;
      const { result, bytes } = cpuTensorBytes(step);
      await result[0].data();
      tf.dispose(result);
      // The first step also creates Adam's moments; the second is a warm step.
      if (i === 1) zeroBytes = bytes;
    }
    return { model, zeroBytes };
  } finally {
    dispose();
  }
}

for (const name of ["enhanced", "baseline"] as const) {
  Deno.test({
    name: `${name}: a warm step makes no CPU zero tensors, and the weights match tfjs's zeros path`,
    ...GPU_TEST,
    fn: async () => {
      await initWebGpu();
      const fast = await trainTwoSteps(name);
      gradientsReadAllOutputs(KERNELS);
      let stock: { model: Model; zeroBytes: number } | undefined;
      try {
        stock = await trainTwoSteps(name);
      } finally {
        gradientsReadFirstOutputOnly(KERNELS);
      }
      try {
        // Made from CPU values: the loss's seed gradient (one float) and the step inputs
        // (src/tf/step_inputs.ts): Adam's three step scalars and one key per dropout mask
        // (enhanced 2, baseline 1).
        const stepInputs = 12 + 4 * (name === "enhanced" ? 2 : 1);
        assert.ok(fast.zeroBytes <= 4 + stepInputs, `${fast.zeroBytes} bytes made on the CPU`);
        assert.ok(stock.zeroBytes > 10_000, `tfjs's path: ${stock.zeroBytes} bytes`);
        await assertSameWeights(fast.model, stock.model);
      } finally {
        fast.model.dispose();
        stock.model.dispose();
      }
    },
  });
}
