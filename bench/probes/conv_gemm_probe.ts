// Per-view timing of the generated tiled convolution (src/ops/conv/gemm.ts) at the enhanced
// CNN's layer shapes: every candidate tile configuration of the adapter's kind (or all of them)
// for forward, backward-data and backward-filter, each view alone, plus forward + backward of
// the whole fused op with the defaults. Figures behind the defaults in conv/tiling.ts.
//
//   deno run -A bench/probes/conv_gemm_probe.ts [--batch 128] [--reps 5] [--all] [--layers 0,1]
//       [--views fwd,bwdData,bwdFilter] [--configs id,id] [--cpu]
//
// Times are GPU timestamps, or with --cpu process CPU time (tf.time kernelMs, the sum over the view's dispatches: bwdData
// includes the filter transpose where one runs, bwdFilter the partial sum), median of --reps
// after a warm-up (first use compiles). FLOPs per view = 2*N*Ho*Wo*Cout*KH*KW*Cin.

import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import {
  allConfigs,
  candidateConfigs,
  CONV_VIEWS,
  type ConvView,
  defaultConfig,
} from "../../src/ops/conv/tiling.ts";
import { backendAdapterKind } from "../../src/ops/conv/tile_plan.ts";
import { ENHANCED_LAYERS } from "../kernels_suite.ts";
import { medianGpuMs, roundRobin } from "../timing.ts";
import { arg } from "./probe_args.ts";
import { convProblem } from "./conv_problem.ts";

/** `--cpu`: process CPU time (all llvmpipe threads, steadier on a shared machine). */
const CPU_CLOCK = Deno.args.includes("--cpu");

/** Median of `f` over `reps` calls after one warm-up call (which compiles): GPU or CPU ms. */
async function gpuMs(f: () => tf.Tensor, reps: number): Promise<number> {
  if (CPU_CLOCK) {
    const once = async () => {
      const c0 = process.cpuUsage();
      const out = f();
      await out.data();
      const c = process.cpuUsage(c0);
      out.dispose();
      return (c.user + c.system) / 1e3;
    };
    await once();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await once());
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  }
  const [samples] = await roundRobin([f], { warmup: 1, repeats: reps, gpu: true });
  const ms = medianGpuMs(samples);
  if (ms === null) throw new Error("conv_gemm_probe: the adapter has no timestamp queries");
  return ms;
}

async function main() {
  const batch = Number(arg("batch", "128"));
  const reps = Number(arg("reps", "5"));
  const views = arg("views", CONV_VIEWS.join(",")).split(",") as ConvView[];
  const layerIdx = arg("layers", "0,1,2,3").split(",").map(Number);
  const report = await initTf("webgpu");
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  const backend = tf.backend() as unknown as WebGPUBackend;
  const kind = backendAdapterKind(tf.backend());
  console.log(`${describeAdapter(report)}; ${kind} configs; batch ${batch}; median of ${reps}`);
  for (const li of layerIdx) {
    const l = ENHANCED_LAYERS[li];
    const { gflop, run, dispose } = convProblem(backend, batch, l, "same");
    const name = `${l.h}x${l.w} ${l.cin}->${l.cout}`;
    for (const view of views) {
      const only = arg("configs", "").split(",").filter(Boolean);
      // Named configs come from every config (the tuner's reference twins included).
      const configs = (Deno.args.includes("--all") || only.length > 0
        ? allConfigs(view)
        : candidateConfigs(view, kind))
        .filter((c) =>
          only.length === 0 || only.includes(c.id) || only.includes(c.id.slice(view.length + 1))
        );
      for (const c of configs) {
        const ms = await gpuMs(() =>
          run[view](c), reps);
        const mark = c.id === defaultConfig(view, kind).id ? " (default)" : "";
        console.log(
          `${name.padEnd(14)} ${view.padEnd(9)} ${c.id.padEnd(28)} ${
            ms.toFixed(1).padStart(8)
          } ms ` +
            `${(gflop / (ms / 1e3)).toFixed(1).padStart(6)} GFLOP/s${mark}`,
        );
      }
    }
    dispose();
  }
}

if (import.meta.main) await main();
