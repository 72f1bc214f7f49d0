// Quick timing probe for the fused conv + BN + ReLU forward: stock tfjs chain vs our kernels,
// training and inference, at the issue's shapes. Each timing includes a read-back (`await
// y.data()`), after warm-up (first use compiles shaders), median of --reps rounds; rows run
// round-robin so that load from other processes hits stock and fused alike.
//
//   deno run -A bench/probes/conv_bn_relu_fwd_probe.ts [--batch 128] [--reps 5] [--only train|infer|first]
//
// FLOPs = 2*N*Ho*Wo*Cout*KH*KW*Cin (the conv; BN and ReLU are not counted).

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { convBnReluInfer, convBnReluTrain } from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import {
  convBnReluInferStock,
  convBnReluTrainStock,
} from "../../src/ops/conv_bn_relu/conv_bn_relu_stock.ts";
import { useNaiveKernels } from "../../src/flags.ts";
import { medianHostMs, roundRobin } from "../timing.ts";
import { arg, type ProbeCase } from "./probe_args.ts";

const CASES: ProbeCase[] = [
  { hw: 28, cin: 1, cout: 32, k: 3 }, // first layer (scalar x)
  { hw: 28, cin: 32, cout: 32, k: 3 },
  { hw: 14, cin: 64, cout: 64, k: 3 },
];

async function main() {
  const batch = Number(arg("batch", "128"));
  const reps = Number(arg("reps", "5"));
  const only = arg("only", "");
  const report = await initTf("webgpu");
  console.log(
    `${describeAdapter(report)}; batch ${batch}; median of ${reps}` +
      `${useNaiveKernels() ? "; NAIVE oracle kernels" : ""}`,
  );
  for (const c of CASES) {
    const x = tf.randomNormal([batch, c.hw, c.hw, c.cin], 0, 1, "float32", 1) as tf.Tensor4D;
    const w = tf.randomNormal([c.k, c.k, c.cin, c.cout], 0, 0.1, "float32", 2) as tf.Tensor4D;
    const gamma = tf.ones([c.cout]) as tf.Tensor1D;
    const beta = tf.zeros([c.cout]) as tf.Tensor1D;
    const mm = tf.zeros([c.cout]) as tf.Tensor1D;
    const mv = tf.ones([c.cout]) as tf.Tensor1D;
    const attrs = { strides: 1, pad: "same" as const };
    if (only === "first" && c.cin !== 1) continue;
    const gflop = (2 * batch * c.hw * c.hw * c.cout * c.k * c.k * c.cin) / 1e9;
    const name = `x=[${batch},${c.hw},${c.hw},${c.cin}] w=[${c.k},${c.k},${c.cin},${c.cout}]`;
    const rows: [string, () => tf.Tensor][] = [];
    if (only !== "infer") {
      rows.push(["train stock", () => {
        const r = convBnReluTrainStock(x, w, gamma, beta, attrs);
        r.mean.dispose();
        r.variance.dispose();
        return r.y;
      }]);
      rows.push(["train fused", () => {
        const r = convBnReluTrain(x, w, gamma, beta, attrs);
        r.mean.dispose();
        r.variance.dispose();
        return r.y;
      }]);
    }
    if (only !== "train") {
      rows.push(["infer stock", () => convBnReluInferStock(x, w, gamma, beta, mm, mv, attrs)]);
      rows.push(["infer fused", () => convBnReluInfer(x, w, gamma, beta, mm, mv, attrs)]);
    }
    const timed = (await roundRobin(
      rows.map(([, f]) => f),
      { warmup: 2, repeats: reps, gpu: false },
    ))
      .map((s) => ({ median: medianHostMs(s), min: Math.min(...s.map((v) => v.hostMs)) }));
    rows.forEach(([label], i) => {
      const { median, min } = timed[i];
      const ratio = i % 2 === 1 ? `  ${(timed[i - 1].median / median).toFixed(2)}x vs stock` : "";
      console.log(
        `${name} ${label.padEnd(12)} ${median.toFixed(1).padStart(8)} ms ` +
          `${(gflop / (median / 1e3)).toFixed(1).padStart(6)} GFLOP/s ` +
          `(best ${(gflop / (min / 1e3)).toFixed(1)})${ratio}`,
      );
    });
    tf.dispose([x, w, gamma, beta, mm, mv]);
  }
}

if (import.meta.main) await main();
