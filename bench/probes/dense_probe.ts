// Dense-layer A/B probe: tfjs's matMul (packed program) vs the generated conv GEMM as a 1x1 conv,
// per view at the models' dense shapes, every software/discrete candidate config.
//   deno run -A bench/probes/dense_probe.ts [--batch 128] [--reps 5]
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { convGeometry } from "../../src/ops/conv/geometry.ts";
import { convBackpropData, convBackpropFilter, convForward } from "../../src/ops/conv/gemm.ts";
import { allConfigs, type ConvView, type TileConfig } from "../../src/ops/conv/tiling.ts";
import { medianGpuMs, medianHostMs, roundRobin } from "../timing.ts";
import { arg } from "./probe_args.ts";

/** [median GPU ms (NaN without timestamp queries), median wall ms] over `reps` calls. */
async function gpuMs(f: () => tf.Tensor, reps: number): Promise<[number, number]> {
  const [samples] = await roundRobin([f], { warmup: 1, repeats: reps, gpu: true });
  return [medianGpuMs(samples) ?? NaN, medianHostMs(samples)];
}

const SHAPES = [[3136, 128], [1600, 128], [128, 10]];
const batch = Number(arg("batch", "128"));
const reps = Number(arg("reps", "5"));
const report = await initTf("webgpu");
const backend = tf.backend() as unknown as WebGPUBackend;
console.log(`${describeAdapter(report)}; batch ${batch}; median of ${reps} (gpu ms / wall ms)`);
const tensor = (info: tf.TensorInfo) => tf.engine().makeTensorFromTensorInfo(info);
for (const [k, c] of SHAPES) {
  const g = convGeometry([batch, 1, 1, k], [1, 1, k, c], 1, "valid");
  const x = tf.randomNormal([batch, k], 0, 1, "float32", 1) as tf.Tensor2D;
  const w = tf.randomNormal([k, c], 0, 0.1, "float32", 2) as tf.Tensor2D;
  const b = tf.randomNormal([c], 0, 0.1, "float32", 4) as tf.Tensor1D;
  const dz = tf.randomNormal([batch, c], 0, 1, "float32", 3) as tf.Tensor2D;
  const name = `${batch}x${k}x${c}`;
  const line = (what: string, [gpu, wall]: [number, number]) =>
    console.log(
      `${name.padEnd(14)} ${what.padEnd(34)} ${gpu.toFixed(2).padStart(8)} ${
        wall.toFixed(2).padStart(8)
      }`,
    );
  line(
    "tfjs fwd fused.matMul",
    await gpuMs(() => tf.fused.matMul({ a: x, b: w, bias: b, activation: "relu" }), reps),
  );
  line("tfjs dx matMul(dz, W^T)", await gpuMs(() => tf.matMul(dz, w, false, true), reps));
  line("tfjs dW matMul(x^T, dz)", await gpuMs(() => tf.matMul(x, dz, true, false), reps));
  const run: Record<ConvView, (cfg: TileConfig) => tf.Tensor> = {
    fwd: (cfg) => tensor(convForward(backend, x, w, g, "biasRelu", [b], cfg)),
    bwdData: (cfg) => tensor(convBackpropData(backend, dz, w, g, cfg)),
    bwdFilter: (cfg) => tensor(convBackpropFilter(backend, dz, x, g, cfg)),
  };
  for (const view of ["fwd", "bwdData", "bwdFilter"] as ConvView[]) {
    let cfgs = allConfigs(view).filter((cfg) =>
      arg("kind", "software") === "all" || cfg.kind === arg("kind", "software")
    );
    if (view === "bwdFilter") {
      cfgs = cfgs.flatMap((cfg) =>
        [1, 4, 16].map((s) => ({ ...cfg, splitK: s, id: `${cfg.id}/s${s}` }))
      );
    }
    for (const cfg of cfgs) line(`ours ${cfg.id}`, await gpuMs(() => run[view](cfg), reps));
  }
  tf.dispose([x, w, b, dz]);
}
