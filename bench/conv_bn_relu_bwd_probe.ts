// Timing probe for the fused conv + BN + ReLU backward at the enhanced CNN's shapes: forward +
// backward through tf.grads, stock chain vs fused op, in one run (the CPUs are shared: only
// ratios within one run mean anything), plus the backward kernel alone, its per-pass GPU
// timestamps, and optional sweeps of the fast path's tunables and the v1 kernels.
// Wall times include a read-back (`await t.data()`), after warm-up (first use compiles shaders),
// median of --reps runs.
//
//   deno run -A bench/conv_bn_relu_bwd_probe.ts [--batch 128] [--reps 5] [--sweep] [--naive]
//
// FLOPs: conv = 2*N*Ho*Wo*Cout*KH*KW*Cin; forward + backward = 3 convs (z, dx, dfilter),
// backward alone = 2 (batch-norm and ReLU work is not counted).

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../src/tf/setup.ts";
import { convBnReluTrain } from "../src/ops/conv_bn_relu.ts";
import { convBnReluTrainStock } from "../src/ops/conv_bn_relu_stock.ts";
import { convGeometry } from "../src/ops/conv_geometry.ts";
import { CONV_BN_RELU_TRAIN_GRAD } from "../src/ops/conv_bn_relu_grad.ts";
import {
  type BwdTuning,
  convBnReluTrainGradWebGPU,
  DEFAULT_TUNING,
} from "../src/ops/conv_bn_relu_bwd.ts";
import { arg, type ProbeCase } from "./probe_args.ts";

const CASES: ProbeCase[] = [
  { hw: 28, cin: 32, cout: 32, k: 3 },
  { hw: 14, cin: 64, cout: 64, k: 3 },
];

/** Median wall time of f (which returns the tensors to await and dispose), after 2 warm-ups. */
async function timeMs(f: () => tf.Tensor[], reps: number): Promise<number> {
  const once = async () => {
    const t0 = performance.now();
    const ts = f();
    for (const t of ts) await t.data();
    const ms = performance.now() - t0;
    tf.dispose(ts);
    return ms;
  };
  for (let i = 0; i < 2; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function line(name: string, label: string, ms: number, gflop: number, extra = "") {
  console.log(
    `${name} ${label.padEnd(22)} ${ms.toFixed(1).padStart(8)} ms ` +
      `${(gflop / (ms / 1e3)).toFixed(2).padStart(6)} GFLOP/s${extra}`,
  );
}

async function main() {
  const batch = Number(arg("batch", "128"));
  const reps = Number(arg("reps", "5"));
  const sweep = Deno.args.includes("--sweep");
  const naive = Deno.args.includes("--naive");
  const report = await initTf("webgpu");
  const backend = tf.backend() as unknown as WebGPUBackend;
  console.log(`${describeAdapter(report)}; batch ${batch}; median of ${reps}`);
  for (const c of CASES) {
    const x = tf.randomNormal([batch, c.hw, c.hw, c.cin], 0, 1, "float32", 1) as tf.Tensor4D;
    const w = tf.randomNormal([c.k, c.k, c.cin, c.cout], 0, 0.1, "float32", 2) as tf.Tensor4D;
    const gamma = tf.ones([c.cout]) as tf.Tensor1D;
    const beta = tf.randomUniform([c.cout], -0.2, 0.2, "float32", 3) as tf.Tensor1D;
    const attrs = { strides: 1, pad: "same" as const };
    const g = convGeometry(x.shape, w.shape, 1, "same");
    const dy = tf.randomNormal([batch, g.outH, g.outW, c.cout], 0, 1, "float32", 4);
    const conv = (2 * batch * g.outH * g.outW * c.cout * c.k * c.k * c.cin) / 1e9;
    const name = `x=[${batch},${c.hw},${c.hw},${c.cin}] w=[${c.k},${c.k},${c.cin},${c.cout}]`;

    const fwdBwd = (chain: typeof convBnReluTrainStock) => () =>
      tf.grads((xx, ww, gg, bb) => {
        const r = chain(
          xx as tf.Tensor4D,
          ww as tf.Tensor4D,
          gg as tf.Tensor1D,
          bb as tf.Tensor1D,
          attrs,
        );
        return tf.sum(tf.mul(r.y, dy));
      })([x, w, gamma, beta]);
    const stockMs = await timeMs(fwdBwd(convBnReluTrainStock), reps);
    line(name, "fwd+bwd stock", stockMs, 3 * conv);
    const fusedMs = await timeMs(fwdBwd(convBnReluTrain), reps);
    line(name, "fwd+bwd fused", fusedMs, 3 * conv, `  ${(stockMs / fusedMs).toFixed(2)}x vs stock`);

    // The backward kernel alone, on saved z and stats from the fused forward.
    const [, z, stats] = tf.engine().runKernel(
      "ConvBnReluTrain",
      { x, filter: w, gamma, beta },
      { strides: [1, 1], pad: "same", epsilon: 1e-3 },
    ) as tf.Tensor[];
    const inputs = { dy, x, filter: w, gamma, beta, z, stats };
    const runBwd = (opts: { naive?: boolean; tuning?: BwdTuning }) => () =>
      convBnReluTrainGradWebGPU(backend, inputs, g, opts).map((info) =>
        tf.engine().makeTensorFromTensorInfo(info)
      );
    const kernelMs = await timeMs(
      () =>
        tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, inputs, {
          strides: [1, 1],
          pad: "same",
          epsilon: 1e-3,
        }) as tf.Tensor[],
      reps,
    );
    line(name, "bwd kernel", kernelMs, 2 * conv);

    // Per-pass GPU time (timestamp queries), one run after the warm-ups above.
    const timing = await backend.time(() => tf.dispose(runBwd({})()));
    const passes = (timing as unknown as { getExtraProfileInfo?: () => string })
      .getExtraProfileInfo?.() ?? "";
    console.log(`${name} bwd passes (GPU ms): ${passes}`);

    if (sweep) {
      const tiles = [[2, 2], [4, 1], [4, 2], [2, 4], [8, 2]];
      for (const [dataTR, dataTV] of tiles) {
        for (const [weightTQ, weightTV] of [[1, 2], [2, 1], [1, 4], [2, 2]]) {
          const tuning = { ...DEFAULT_TUNING, dataTR, dataTV, weightTQ, weightTV };
          const ms = await timeMs(runBwd({ tuning }), reps);
          const isDefault = JSON.stringify(tuning) === JSON.stringify(DEFAULT_TUNING);
          const label = `bwd d${dataTR}x${dataTV} w${weightTQ}x${weightTV}`;
          line(name, label, ms, 2 * conv, isDefault ? " (default)" : "");
        }
      }
    }
    if (naive) line(name, "bwd kernel v1", await timeMs(runBwd({ naive: true }), 1), 2 * conv);
    tf.dispose([x, w, gamma, beta, dy, z, stats]);
  }
}

if (import.meta.main) await main();
