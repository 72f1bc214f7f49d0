// Probe: GPU time of each WebGPU program of the fused conv + BN + ReLU layer, training forward
// (ConvBnReluTrain with the running statistics) and backward (ConvBnReluTrainGrad, or
// ConvBnReluTrainFilterGrads for the model-input layer), at enhanced's four conv + BN layers.
// Per program: median over --repeats of its summed GPU ms in one call (tf.profile's timestamp
// figures, after a warm-up call: first use compiles shaders). Meant for A/B runs of the
// batch-norm passes (kernels/bn_*.wgsl): run it in two trees back to back, compare per program.
//
//   deno run -A bench/probes/bn_passes_probe.ts [--batch 128] [--repeats 7]

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { CONV_BN_RELU_TRAIN } from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import {
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  CONV_BN_RELU_TRAIN_GRAD,
} from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import { median } from "../../src/stats.ts";
import { parsePrograms } from "../trace.ts";
import { arg, type ProbeCase } from "./probe_args.ts";

/** enhanced's conv + BN + ReLU layers; the first one reads the images (no dx). */
const CASES: (ProbeCase & { first: boolean })[] = [
  { hw: 28, cin: 1, cout: 32, k: 3, first: true },
  { hw: 28, cin: 32, cout: 32, k: 3, first: false },
  { hw: 14, cin: 32, cout: 64, k: 3, first: false },
  { hw: 14, cin: 64, cout: 64, k: 3, first: false },
];

/** GPU ms per program of one call of `f`, summed over the call's kernels. */
async function programMs(f: () => tf.Tensor[]): Promise<Map<string, number>> {
  const info = await tf.profile(() => tf.dispose(f()));
  const ms = new Map<string, number>();
  for (const k of info.kernels) {
    const extra = await (k.extraInfo as string | Promise<string>);
    for (const [name, t] of parsePrograms(extra)) ms.set(name, (ms.get(name) ?? 0) + t);
  }
  return ms;
}

async function main() {
  const batch = Number(arg("batch", "128"));
  const repeats = Number(arg("repeats", "7"));
  const report = await initTf("webgpu");
  console.log(`${describeAdapter(report)}; batch ${batch}; GPU ms, median of ${repeats}`);
  for (const c of CASES) {
    const x = tf.randomNormal([batch, c.hw, c.hw, c.cin], 0, 1, "float32", 1);
    const filter = tf.randomNormal([c.k, c.k, c.cin, c.cout], 0, 0.1, "float32", 2);
    const gamma = tf.randomUniform([c.cout], 0.5, 1.5, "float32", 3);
    const beta = tf.randomUniform([c.cout], -0.1, 0.1, "float32", 4);
    const movingMean = tf.zeros([c.cout]);
    const movingVariance = tf.ones([c.cout]);
    const attrs = { strides: 1, pad: "same", epsilon: 1e-3, momentum: 0.99 };
    const forward = () =>
      tf.engine().runKernel(CONV_BN_RELU_TRAIN, {
        x,
        filter,
        gamma,
        beta,
        movingMean,
        movingVariance,
      }, attrs) as tf.Tensor[];
    const [y, z, stats, ...rest] = forward();
    tf.dispose([y, ...rest]);
    const dy = tf.randomNormal(z.shape, 0, 1, "float32", 5);
    const grads = { dy, x, filter, gamma, beta, z, stats };
    const backward = () =>
      c.first
        ? tf.engine().runKernel(CONV_BN_RELU_TRAIN_FILTER_GRADS, grads, {
          ...attrs,
          inputGradient: false,
        }) as tf.Tensor[]
        : tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, grads, attrs) as tf.Tensor[];
    for (const [pass, f] of [["forward", forward], ["backward", backward]] as const) {
      await programMs(f); // warm-up: compiles
      const samples = new Map<string, number[]>();
      for (let r = 0; r < repeats; r++) {
        for (const [name, ms] of await programMs(f)) {
          samples.set(name, [...(samples.get(name) ?? []), ms]);
        }
      }
      const parts = [...samples].map(([name, v]) =>
        `${name.replace(/Program$/, "")} ${median(v).toFixed(2)}`
      );
      console.log(`${c.hw}x${c.hw} ${c.cin}->${c.cout} ${pass}: ${parts.join(", ")}`);
    }
    tf.dispose([x, filter, gamma, beta, movingMean, movingVariance, z, stats, dy]);
  }
}

if (import.meta.main) await main();
