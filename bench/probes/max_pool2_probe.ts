// Probe: the 2x2 max-pool of a training step alone, forward + backward, at the models' pool
// shapes: tfjs (tf.maxPool, then MaxPoolGrad as its gradient calls it) vs ours (MaxPool2, then
// MaxPool2Grad), alternating ours / tfjs within one process so both see the same machine load.
// Prints per shape the median wall time to a read-back, the median GPU time (tf.time's
// kernelMs, timestamp queries, where the adapter has them) and dispatches, and the ratio tfjs / ours.
//   deno run -A bench/probes/max_pool2_probe.ts [--batch 128] [--repeats 15]

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { MAX_POOL2_GRAD, maxPool2 } from "../../src/ops/max_pool2/max_pool2.ts";
import { countDispatches } from "../dispatches.ts";
import { gpuText, medianGpuMs, medianHostMs, roundRobin, type Work } from "../timing.ts";
import { arg } from "./probe_args.ts";

type Shape = [number, number, number, number];
type Pass = (x: tf.Tensor4D, dy: tf.Tensor4D) => tf.Tensor[];

const POOL_ATTRS = { filterSize: 2, strides: 2, pad: "valid" };

const stock: Pass = (x, dy) => {
  const y = tf.maxPool(x, 2, 2, "valid");
  const dx = tf.engine().runKernel("MaxPoolGrad", { dy, input: x, output: y }, POOL_ATTRS);
  return [y, dx as tf.Tensor];
};

const ours: Pass = (x, dy) => {
  const y = maxPool2(x);
  return [y, tf.engine().runKernel(MAX_POOL2_GRAD, { dy, x }) as tf.Tensor];
};

/** The pass, recording its dispatch count in `counted`. */
function counting(pass: Pass, x: tf.Tensor4D, dy: tf.Tensor4D, counted: { n: number }): Work {
  return () => {
    const { result, count } = countDispatches(() => pass(x, dy));
    counted.n = count?.total ?? 0;
    return result;
  };
}

const adapter = await initTf("webgpu");
const batch = Number(arg("batch", "128")), repeats = Number(arg("repeats", "15"));
console.log(`${describeAdapter(adapter)}; batch ${batch}, median of ${repeats}, fwd + bwd`);
const shapes: [string, Shape][] = [
  ["enhanced pool 1", [batch, 28, 28, 32]],
  ["enhanced pool 2", [batch, 14, 14, 64]],
  ["baseline pool 1", [batch, 26, 26, 32]],
  ["baseline pool 2", [batch, 11, 11, 64]],
];
for (const [label, shape] of shapes) {
  const x = tf.randomUniform(shape, 0, 1, "float32", 1) as tf.Tensor4D;
  const [n, h, w, c] = shape;
  const dy = tf.randomUniform([n, h >> 1, w >> 1, c], -1, 1, "float32", 2) as tf.Tensor4D;
  const counted = [{ n: 0 }, { n: 0 }];
  const [t, o] = (await roundRobin([
    counting(stock, x, dy, counted[0]),
    counting(ours, x, dy, counted[1]),
  ], { warmup: 1, repeats })).map((s, i) => ({
    wall: medianHostMs(s),
    gpu: medianGpuMs(s),
    dispatches: counted[i].n,
  }));
  const fmt = (s: typeof t) =>
    `${s.wall.toFixed(2)} ms wall, ${gpuText(s.gpu)} GPU, ${s.dispatches} dispatches`;
  const gpuRatio = t.gpu !== null && o.gpu !== null ? `, GPU ${(t.gpu / o.gpu).toFixed(2)}x` : "";
  console.log(
    `${label} [${shape}]: tfjs ${fmt(t)} | ours ${fmt(o)} | tfjs/ours wall ${
      (t.wall / o.wall).toFixed(2)
    }x${gpuRatio}`,
  );
  tf.dispose([x, dy]);
}
