// Kernels suite: our fused conv + batch-norm + ReLU (training forward, forward + backward,
// inference) against the stock tfjs ops it replaces, on the webgpu backend and, at the smallest
// batch, against the same stock chain on the CPU backend. Shapes are the enhanced CNN's layers.

import * as tf from "@tensorflow/tfjs-core";
import { convBnReluShapes } from "../src/model/model.ts";
import { convBnReluInfer, convBnReluTrain } from "../src/ops/conv_bn_relu/conv_bn_relu.ts";
import {
  type ConvBnReluAttrs,
  convBnReluInferStock,
  convBnReluTrainStock,
} from "../src/ops/conv_bn_relu/conv_bn_relu_stock.ts";
import { asConvLayer, viewProblems } from "./conv_views.ts";
import { defaultTilePlan, planChoices, type TilePlan } from "../src/ops/conv/tile_plan.ts";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { measure, type Stats, type TimingOptions, type Work } from "./timing.ts";
import { convBnReluWork, type KernelMode, layerLabel, type LayerShape } from "./work.ts";

/** The enhanced CNN's four conv + BN + ReLU layers (3x3, stride 1, same), from the model. */
export const ENHANCED_LAYERS: LayerShape[] = convBnReluShapes("enhanced");

/** `--quick`: tiny shapes that still cover the model-input layer (cin 1) and a hidden one. */
export const QUICK_LAYERS: LayerShape[] = [
  { h: 8, w: 8, cin: 1, cout: 4, k: 3, stride: 1, pad: "same" },
  { h: 6, w: 6, cin: 4, cout: 8, k: 3, stride: 1, pad: "same" },
];

export const MODES: KernelMode[] = ["train-fwd", "train-fwd-bwd", "infer"];

/** Speed-up over the stock webgpu ops that each mode should reach (issue #6). */
export const SPEEDUP_TARGETS: Record<KernelMode, number> = {
  "train-fwd": 3,
  "train-fwd-bwd": 2,
  "infer": 1.5,
};
/** Fused training forward at batch 128 on a software adapter: GFLOP/s target. */
export const SOFTWARE_FWD_GFLOPS_TARGET = 25;

export type Impl = "fused" | "stock";

/** One timed implementation of a case. */
export interface ImplResult {
  stats: Stats;
  gflopPerS: number;
  gbPerS: number;
  /** Percent of the roofline ceilings; null when no roofline was measured (cpu, no webgpu). */
  pctPeakFlops: number | null;
  pctPeakBandwidth: number | null;
  /** Percent of the host CPU's FMA peak (software adapters only; bench/cpu_peak.ts). */
  pctCpuPeak?: number | null;
}

export interface KernelCase {
  id: string;
  mode: KernelMode;
  layer: LayerShape;
  label: string;
  batch: number;
  flops: number;
  bytes: number;
  /** Null when that implementation failed on this case (the message is in `errors`). */
  fused: ImplResult | null;
  stock: ImplResult | null;
  /** Stock ops on the tfjs CPU backend: only at the smallest batch of the sweep. */
  cpu: ImplResult | null;
  speedupVsStock: number | null;
  speedupVsCpu: number | null;
  /** Speed-up target vs stock for this mode, and whether this case met it. */
  target: number;
  targetMet: boolean;
  /** "fused: message" for each implementation that threw; the suite goes on with the rest. */
  errors: string[];
  /** Tile configurations the fused op's views ran with (conv/tiling.ts ids), e.g. fwd.r16c16v4. */
  tileConfigs: string[];
}

/** The tile configurations a layer's views run with under `tiles` in `mode` (fwd only without the backward). */
export function layerTileConfigs(
  tiles: TilePlan,
  l: LayerShape,
  batch: number,
  mode: KernelMode,
): string[] {
  const views = viewProblems(asConvLayer(l), batch)
    .filter((p) => mode === "train-fwd-bwd" || p.view === "fwd");
  return [...planChoices(tiles, views, tf.backend() as unknown as WebGPUBackend).values()];
}

export interface Ceilings {
  gflopPerS: number;
  gbPerS: number;
  /** The host CPU's FMA peak where the adapter runs on it (software adapters), else null. */
  cpuGflopPerS?: number | null;
}

export interface KernelSuiteOptions {
  layers: LayerShape[];
  batches: number[];
  modes?: KernelMode[];
  timing: TimingOptions;
  /** Measured roofline of the webgpu adapter, for the % columns. */
  ceilings: Ceilings | null;
  /** Also time the stock chain on the CPU backend at the smallest batch. */
  cpu: boolean;
  /** The tile plan the fused op runs under (default: the adapter's built-in one). */
  tiles?: TilePlan;
  log?: (msg: string) => void;
}

interface CaseInputs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
  movingMean: tf.Tensor1D;
  movingVariance: tf.Tensor1D;
  dy: tf.Tensor4D;
}

function makeInputs(l: LayerShape, batch: number, attrs: ConvBnReluAttrs): CaseInputs {
  return tf.tidy(() => {
    const x = tf.randomNormal([batch, l.h, l.w, l.cin], 0, 1, "float32", 11) as tf.Tensor4D;
    const fanIn = l.k * l.k * l.cin;
    const filter = tf.randomNormal(
      [l.k, l.k, l.cin, l.cout],
      0,
      Math.sqrt(2 / fanIn),
      "float32",
      12,
    ) as tf.Tensor4D;
    const gamma = tf.randomUniform([l.cout], 0.5, 1.5, "float32", 13) as tf.Tensor1D;
    const beta = tf.randomUniform([l.cout], -0.5, 0.5, "float32", 14) as tf.Tensor1D;
    const movingMean = tf.randomUniform([l.cout], -0.2, 0.2, "float32", 15) as tf.Tensor1D;
    const movingVariance = tf.randomUniform([l.cout], 0.5, 2, "float32", 16) as tf.Tensor1D;
    const yShape = convBnReluTrainStock(x, filter, gamma, beta, attrs).y.shape;
    const dy = tf.randomNormal(yShape, 0, 1, "float32", 17) as tf.Tensor4D;
    return { x, filter, gamma, beta, movingMean, movingVariance, dy };
  });
}

type TrainFn = typeof convBnReluTrain;
type InferFn = typeof convBnReluInfer;

/** The work to time for one mode with one implementation of the op. */
function caseWork(
  mode: KernelMode,
  inp: CaseInputs,
  attrs: ConvBnReluAttrs,
  train: TrainFn,
  infer: InferFn,
  needsDx: boolean,
): Work {
  const { x, filter, gamma, beta, movingMean, movingVariance, dy } = inp;
  switch (mode) {
    case "train-fwd":
      return () => {
        const r = train(x, filter, gamma, beta, attrs);
        return [r.y, r.mean, r.variance];
      };
    case "train-fwd-bwd": {
      // The model-input layer needs no dX: leave x out of the gradient as training does.
      const T4 = (t: tf.Tensor) => t as tf.Tensor4D;
      const T1 = (t: tf.Tensor) => t as tf.Tensor1D;
      return needsDx
        ? () =>
          tf.grads((a, f, g, b) => train(T4(a), T4(f), T1(g), T1(b), attrs).y)([
            x,
            filter,
            gamma,
            beta,
          ], dy)
        : () =>
          tf.grads((f, g, b) => train(x, T4(f), T1(g), T1(b), attrs).y)([filter, gamma, beta], dy);
    }
    case "infer":
      return () => infer(x, filter, gamma, beta, movingMean, movingVariance, attrs);
  }
}

function implResult(
  stats: Stats,
  flops: number,
  bytes: number,
  ceilings: Ceilings | null,
): ImplResult {
  const gflopPerS = flops / (stats.medianMs * 1e6);
  const gbPerS = bytes / (stats.medianMs * 1e6);
  return {
    stats,
    gflopPerS,
    gbPerS,
    pctPeakFlops: ceilings ? 100 * gflopPerS / ceilings.gflopPerS : null,
    pctPeakBandwidth: ceilings ? 100 * gbPerS / ceilings.gbPerS : null,
    pctCpuPeak: ceilings?.cpuGflopPerS ? 100 * gflopPerS / ceilings.cpuGflopPerS : null,
  };
}

/** Times the stock chain on the CPU backend, then switches back to the previous backend. */
async function timeOnCpu(
  mode: KernelMode,
  l: LayerShape,
  batch: number,
  attrs: ConvBnReluAttrs,
  timing: TimingOptions,
  needsDx: boolean,
): Promise<Stats> {
  const previous = tf.getBackend();
  await tf.setBackend("cpu");
  try {
    const inp = makeInputs(l, batch, attrs);
    try {
      const work = caseWork(mode, inp, attrs, convBnReluTrainStock, convBnReluInferStock, needsDx);
      // The CPU is slow and its timing stable: fewer repeats keep the suite short.
      return await measure(work, {
        warmup: Math.min(timing.warmup, 1),
        repeats: Math.min(timing.repeats, 3),
        clock: "host-sync",
      });
    } finally {
      tf.dispose(Object.values(inp));
    }
  } finally {
    await tf.setBackend(previous);
  }
}

export async function runKernelSuite(opts: KernelSuiteOptions): Promise<KernelCase[]> {
  const log = opts.log ?? (() => {});
  const modes = opts.modes ?? MODES;
  const smallest = Math.min(...opts.batches);
  const cases: KernelCase[] = [];
  const tiles = opts.tiles ?? defaultTilePlan(tf.backend());
  for (const layer of opts.layers) {
    const attrs: ConvBnReluAttrs = { strides: layer.stride, pad: layer.pad };
    const fusedAttrs: ConvBnReluAttrs = { ...attrs, tiles };
    const needsDx = layer.cin > 1;
    for (const batch of opts.batches) {
      const inp = makeInputs(layer, batch, attrs);
      try {
        for (const mode of modes) {
          const label = layerLabel(layer);
          const id = `${mode} ${label} b${batch}`;
          log(`  ${id} ...`);
          const { flops, bytes } = convBnReluWork(layer, batch, mode, needsDx);
          const errors: string[] = [];
          const attempt = async (name: string, run: () => Promise<Stats>) => {
            try {
              return await run();
            } catch (e) {
              errors.push(`${name}: ${(e as Error).message}`);
              log(`    ${name} failed: ${(e as Error).message}`);
              return null;
            }
          };
          const fusedStats = await attempt("fused", () =>
            measure(
              caseWork(mode, inp, fusedAttrs, convBnReluTrain, convBnReluInfer, needsDx),
              opts.timing,
            ));
          const stockStats = await attempt("stock", () =>
            measure(
              caseWork(mode, inp, attrs, convBnReluTrainStock, convBnReluInferStock, needsDx),
              opts.timing,
            ));
          const cpuStats = opts.cpu && batch === smallest
            ? await attempt(
              "cpu",
              () => timeOnCpu(mode, layer, batch, attrs, opts.timing, needsDx),
            )
            : null;
          const result = (st: Stats | null, ceilings: Ceilings | null) =>
            st ? implResult(st, flops, bytes, ceilings) : null;
          const speedupVsStock = fusedStats && stockStats
            ? stockStats.medianMs / fusedStats.medianMs
            : null;
          cases.push({
            id,
            mode,
            layer,
            label,
            batch,
            flops,
            bytes,
            fused: result(fusedStats, opts.ceilings),
            stock: result(stockStats, opts.ceilings),
            cpu: result(cpuStats, null),
            speedupVsStock,
            // CPU runs on the host clock; compare with the fused op's host clock too.
            speedupVsCpu: cpuStats && fusedStats
              ? cpuStats.medianMs / fusedStats.hostMedianMs
              : null,
            target: SPEEDUP_TARGETS[mode],
            targetMet: speedupVsStock !== null && speedupVsStock >= SPEEDUP_TARGETS[mode],
            errors,
            tileConfigs: layerTileConfigs(tiles, layer, batch, mode),
          });
        }
      } finally {
        tf.dispose(Object.values(inp));
      }
    }
  }
  return cases;
}
