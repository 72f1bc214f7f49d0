// Probe: the 2x2 max-pool of a training step alone, forward + backward, at the models' pool
// shapes: tfjs (tf.maxPool, then MaxPoolGrad as its gradient calls it) vs ours (MaxPool2, then
// MaxPool2Grad), alternating ours / tfjs within one process so both see the same machine load.
// Prints per shape the median wall time to a read-back, the median GPU time (tf.time's
// kernelMs, timestamp queries) and dispatches, and the ratio tfjs / ours.
//   deno run -A bench/max_pool2_probe.ts [--batch 128] [--repeats 15]

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../src/tf/setup.ts";
import { MAX_POOL2_GRAD, maxPool2 } from "../src/ops/max_pool2/max_pool2.ts";
import { countDispatches } from "./dispatches.ts";
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

interface Sample {
  wall: number;
  gpu: number;
  dispatches: number;
}

async function once(pass: Pass, x: tf.Tensor4D, dy: tf.Tensor4D): Promise<Sample> {
  let dispatches = 0;
  const t0 = performance.now();
  const info = await tf.time(() => {
    const { result, count } = countDispatches(() => pass(x, dy));
    dispatches = count?.total ?? 0;
    tf.dispose(result);
  });
  return { wall: performance.now() - t0, gpu: info.kernelMs as number, dispatches };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

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
  const runs: Record<"tfjs" | "ours", Sample[]> = { tfjs: [], ours: [] };
  await once(stock, x, dy); // compile both pipelines before timing
  await once(ours, x, dy);
  for (let r = 0; r < repeats; r++) {
    runs.tfjs.push(await once(stock, x, dy));
    runs.ours.push(await once(ours, x, dy));
  }
  const sum = (k: "tfjs" | "ours") => ({
    wall: median(runs[k].map((s) => s.wall)),
    gpu: median(runs[k].map((s) => s.gpu)),
    dispatches: runs[k][0].dispatches,
  });
  const t = sum("tfjs"), o = sum("ours");
  const fmt = (s: ReturnType<typeof sum>) =>
    `${s.wall.toFixed(2)} ms wall, ${s.gpu.toFixed(2)} ms GPU, ${s.dispatches} dispatches`;
  console.log(
    `${label} [${shape}]: tfjs ${fmt(t)} | ours ${fmt(o)} | tfjs/ours wall ${
      (t.wall / o.wall).toFixed(2)
    }x, GPU ${(t.gpu / o.gpu).toFixed(2)}x`,
  );
  tf.dispose([x, dy]);
}
