// The kernels suite's per-view table: each conv layer's three GEMM views (forward, backward-data,
// backward-filter) timed alone with the tile configuration the dispatch uses, the way the
// autotuner times a candidate (src/ops/autotune/autotune_conv.ts: GPU time of the view's kernel
// where timestamps exist, else host time to the read-back), as GFLOP/s and as a share of the CPU's
// FMA peak on a software adapter. The forward view is timed inside the fused conv + batch-norm +
// ReLU forward (its kernel's time includes the statistics epilogue), the filter view inside the
// fused op's parameter gradients, as the tuner does.

import * as tf from "@tensorflow/tfjs-core";
import {
  type ConvLayer,
  type ConvProblem,
  layerGeometry,
  makeInputs,
  problemWork,
  timeOnce,
  timestampsAvailable,
} from "../src/ops/autotune/autotune_conv.ts";
import { type ConvView, shapeKey } from "../src/ops/conv/tiling.ts";
import type { ConvGeometry } from "../src/ops/conv/geometry.ts";
import { defaultTilePlan, tileConfigFor, type TilePlan } from "../src/ops/conv/tile_plan.ts";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { layerLabel, type LayerShape } from "./work.ts";

export interface ViewCase {
  layer: string;
  batch: number;
  view: ConvView;
  config: string;
  /** 2 x N*Ho*Wo x KH*KW*Cin x Cout: the same for all three views. */
  flops: number;
  /** Median of the repeats, ms. */
  medianMs: number;
  clock: string;
  gflopPerS: number;
  /** Percent of the host CPU's FMA peak; null on a GPU or without a peak. */
  pctCpuPeak: number | null;
}

export interface ViewSuiteOptions {
  layers: LayerShape[];
  batches: number[];
  repeats: number;
  /** The CPU's FMA peak where the adapter runs on it (software adapters), else null. */
  cpuGflopPerS: number | null;
  /** The tile plan the views run under (default: the adapter's built-in one). */
  tiles?: TilePlan;
  log?: (msg: string) => void;
}

/** A conv layer's views at `batch` (no dx for a layer that reads the images: Cin 1). */
export function viewProblems(
  layer: ConvLayer,
  batch: number,
): { view: ConvView; g: ConvGeometry }[] {
  const g = layerGeometry(layer, batch);
  const views: ConvView[] = layer.cin > 1 ? ["fwd", "bwdData", "bwdFilter"] : ["fwd", "bwdFilter"];
  return views.map((view) => ({ view, g }));
}

/** A benchmark layer shape as the tuner's ConvLayer (conv + BN + ReLU). */
export function asConvLayer(l: LayerShape): ConvLayer {
  return {
    name: layerLabel(l),
    op: "bn-relu",
    h: l.h,
    w: l.w,
    cin: l.cin,
    cout: l.cout,
    kh: l.k,
    kw: l.k,
    stride: l.stride,
    pad: l.pad,
  };
}

const WORK = { fwd: "train-fwd", bwdData: "bwd-data", bwdFilter: "bwd-filter" } as const;

/** Times every view of every layer (bwdData only where Cin > 1: the input layer needs no dx). */
export async function runViewSuite(opts: ViewSuiteOptions): Promise<ViewCase[]> {
  const clock = timestampsAvailable() ? "gpu-timestamp" : "host-sync";
  const out: ViewCase[] = [];
  const tiles = opts.tiles ?? defaultTilePlan(tf.backend());
  for (const shape of opts.layers) {
    const layer = asConvLayer(shape);
    for (const batch of opts.batches) {
      const g = layerGeometry(layer, batch);
      const flops = 2 * g.batch * g.outH * g.outW * g.kH * g.kW * g.inC * g.outC;
      const views: ConvView[] = shape.cin > 1
        ? ["fwd", "bwdData", "bwdFilter"]
        : ["fwd", "bwdFilter"];
      for (const view of views) {
        const p: ConvProblem = { view, layer, batch, work: WORK[view], key: shapeKey(view, g) };
        const config = tileConfigFor(tiles, view, g, tf.backend() as unknown as WebGPUBackend);
        opts.log?.(`  ${view} ${layer.name} b${batch} (${config.id}) ...`);
        const inputs = makeInputs(p);
        try {
          const [work, kernel] = problemWork(p, inputs);
          await timeOnce(work, kernel, tiles, clock); // warm-up: compiles the pipeline
          const ms: number[] = [];
          for (let i = 0; i < opts.repeats; i++) {
            ms.push(await timeOnce(work, kernel, tiles, clock));
          }
          ms.sort((a, b) => a - b);
          const medianMs = ms[ms.length >> 1];
          const gflopPerS = flops / (medianMs * 1e6);
          out.push({
            layer: layer.name,
            batch,
            view,
            config: config.id,
            flops,
            medianMs,
            clock,
            gflopPerS,
            pctCpuPeak: opts.cpuGflopPerS ? 100 * gflopPerS / opts.cpuGflopPerS : null,
          });
        } finally {
          tf.dispose(Object.values(inputs));
        }
      }
    }
  }
  return out;
}
