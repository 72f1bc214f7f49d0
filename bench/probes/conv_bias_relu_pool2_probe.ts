// Probe: the backward of baseline's conv stages from the pooled gradient to dz and dbias, three
// ways, alternating within one process so all see the same machine load:
//   tfjs ops   MaxPool2Grad, then tf.step, tf.mul, tf.sum (transpose + reduce)
//   separate   MaxPool2Grad, then BiasActGrad
//   fused      MaxPool2ReluBiasGrad, one pass
// Prints per shape the median GPU time (tf.time's kernelMs), wall time to a read-back and
// dispatches.
//   deno run -A bench/probes/conv_bias_relu_pool2_probe.ts [--batch 128] [--repeats 15]

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { MAX_POOL2_GRAD } from "../../src/ops/max_pool2/max_pool2.ts";
import { biasActGrad } from "../../src/ops/bias_act_grad/bias_act_grad.ts";
import { MAX_POOL2_RELU_BIAS_GRAD } from "../../src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { countDispatches } from "../dispatches.ts";
import { gpuText, medianGpuMs, medianHostMs, roundRobin, type Work } from "../timing.ts";
import { arg } from "./probe_args.ts";

type Pass = (dy: tf.Tensor, y: tf.Tensor) => tf.Tensor[];

const route = (dy: tf.Tensor, y: tf.Tensor) =>
  tf.engine().runKernel(MAX_POOL2_GRAD, { dy, x: y }) as tf.Tensor;

const passes: Record<string, Pass> = {
  "tfjs ops": (dy, y) => {
    const routed = route(dy, y);
    const dz = tf.mul(routed, tf.step(y));
    return [routed, dz, tf.sum(dz, [0, 1, 2])];
  },
  separate: (dy, y) => {
    const routed = route(dy, y);
    const { dz, dbias } = biasActGrad(routed, y, "relu");
    return [routed, dz, dbias];
  },
  fused: (dy, y) => tf.engine().runKernel(MAX_POOL2_RELU_BIAS_GRAD, { dy, y }) as tf.Tensor[],
};

/** The pass, recording its dispatch count in `counted`. */
function counting(pass: Pass, dy: tf.Tensor, y: tf.Tensor, counted: { n: number }): Work {
  return () => {
    const { result, count } = countDispatches(() => tf.tidy(() => pass(dy, y)));
    counted.n = count?.total ?? 0;
    return result;
  };
}

const adapter = await initTf("webgpu");
const batch = Number(arg("batch", "128")), repeats = Number(arg("repeats", "15"));
console.log(`${describeAdapter(adapter)}; batch ${batch}, median of ${repeats}`);
for (const [h, c] of [[26, 32], [11, 64]]) {
  const y = tf.relu(tf.randomUniform([batch, h, h, c], -1, 1, "float32", 1));
  const dy = tf.randomUniform([batch, h >> 1, h >> 1, c], -1, 1, "float32", 2);
  const names = Object.keys(passes);
  const counted = names.map(() => ({ n: 0 }));
  const samples = await roundRobin(
    names.map((name, i) => counting(passes[name], dy, y, counted[i])),
    { warmup: 1, repeats },
  );
  const line = names.map((name, i) =>
    `${name} ${gpuText(medianGpuMs(samples[i]))} GPU / ${
      medianHostMs(samples[i]).toFixed(2)
    } ms wall / ${counted[i].n} dispatches`
  );
  console.log(`[${batch},${h},${h},${c}]: ${line.join(" | ")}`);
  tf.dispose([y, dy]);
}
