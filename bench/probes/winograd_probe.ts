// Winograd F(2x2, 3x3) against the direct tiled convolution, per view, at the models' 3x3 layer
// shapes: every candidate of the adapter's kind (direct and Winograd) timed in alternating
// rounds, so that a loaded machine slows all of them alike.
//
//   deno run -A bench/probes/winograd_probe.ts [--batch 128] [--rounds 3] [--models baseline,enhanced]
//       [--views fwd,bwdData,bwdFilter]
//
// Per (layer, view, config): median GPU-timestamp ms of the view's dispatches (tf.time kernelMs:
// Winograd's transforms and GEMM together, the direct kernel with its filter transpose or
// partial sum) and GFLOP/s-equivalent = the direct method's 2*N*Ho*Wo*Cout*9*Cin per second;
// then the best Winograd over the best direct config. bwdData is skipped for the model-input
// layer (nobody needs its dx).

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { candidateConfigs, CONV_VIEWS, type ConvView } from "../../src/ops/conv/tiling.ts";
import { backendAdapterKind } from "../../src/ops/conv/tile_plan.ts";
import { architecture, type ModelName } from "../../src/model/model.ts";
import { arg } from "./probe_args.ts";
import { convProblem } from "./conv_problem.ts";

async function kernelMs(f: () => tf.Tensor): Promise<number> {
  let out: tf.Tensor | undefined;
  const t = await tf.time(() => {
    out = f();
  });
  await out!.data();
  out!.dispose();
  return t.kernelMs as number;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main() {
  const batch = Number(arg("batch", "128"));
  const rounds = Number(arg("rounds", "3"));
  const models = arg("models", "baseline,enhanced").split(",") as ModelName[];
  const views = arg("views", CONV_VIEWS.join(",")).split(",") as ConvView[];
  const report = await initTf("webgpu");
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  const backend = tf.backend() as unknown as WebGPUBackend;
  const kind = backendAdapterKind(tf.backend());
  console.log(
    `${describeAdapter(report)}; ${kind} candidates; batch ${batch}; median of ${rounds}`,
  );
  const seen = new Set<string>();
  for (const model of models) {
    for (const l of architecture(model)) {
      if (l.kind !== "conv-relu" && l.kind !== "conv-bn-relu") continue;
      const s = l.shape;
      const name = `${s.h}x${s.w}x${s.cin}->${s.cout} ${s.pad}`;
      if (seen.has(name)) continue;
      seen.add(name);
      const { gflop, run, dispose } = convProblem(backend, batch, { ...s, k: 3 }, s.pad);
      for (const view of views) {
        if (view === "bwdData" && s.cin === 1) continue;
        const configs = candidateConfigs(view, kind);
        for (const c of configs) await kernelMs(() => run[view](c)); // compile, warm up
        const samples = new Map(configs.map((c) => [c.id, [] as number[]]));
        for (let r = 0; r < rounds; r++) {
          for (const c of configs) samples.get(c.id)!.push(await kernelMs(() => run[view](c)));
        }
        const ms = new Map(configs.map((c) => [c.id, median(samples.get(c.id)!)]));
        const best = (wino: boolean) =>
          Math.min(...configs.filter((c) => !!c.winograd === wino).map((c) => ms.get(c.id)!));
        for (const c of configs) {
          const m = ms.get(c.id)!;
          console.log(
            `${name.padEnd(20)} ${view.padEnd(9)} ${c.id.padEnd(30)} ${
              m.toFixed(1).padStart(8)
            } ms ` +
              `${(gflop / (m / 1e3)).toFixed(1).padStart(6)} GFLOP/s-eq`,
          );
        }
        const ratio = best(false) / best(true);
        console.log(
          `${name.padEnd(20)} ${view.padEnd(9)} best direct ${best(false).toFixed(1)} ms, best ` +
            `Winograd ${best(true).toFixed(1)} ms: Winograd ${ratio.toFixed(2)}x`,
        );
      }
      dispose();
    }
  }
}

if (import.meta.main) await main();
