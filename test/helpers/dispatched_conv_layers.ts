// Test oracle for the autotuner's problem list: the conv layers a real training step dispatches.

import * as tf from "@tensorflow/tfjs-core";
import { createModel, type ModelName } from "../../src/model/model.ts";
import { makeTrainStep } from "../../src/train/step.ts";
import type { DiscoveredLayer } from "../../src/train/autotune_model.ts";
import { CONV_BN_RELU_TRAIN } from "../../src/ops/conv_bn_relu/conv_bn_relu.ts";
import { CONV_BIAS_RELU } from "../../src/ops/conv_bias_relu/conv_bias_relu.ts";
import { CONV_BIAS_RELU_POOL2 } from "../../src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { CONV_VIEWS, shapeKey, type TileConfig } from "../../src/ops/conv/tiling.ts";
import { backendAdapterKind, tilePlan } from "../../src/ops/conv/tile_plan.ts";
import { type ConvLayer, layerGeometry, layerLabel } from "../../src/ops/autotune/autotune_conv.ts";

/** Stride and padding that map an input extent to an output extent (tfjs's conventions). */
function stridePad(
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  outH: number,
  outW: number,
): { stride: number; pad: "same" | "valid" } | null {
  for (const stride of [1, 2, 3, 4]) {
    for (const pad of ["same", "valid"] as const) {
      const out = (n: number, k: number) =>
        pad === "same" ? Math.ceil(n / stride) : Math.ceil((n - k + 1) / stride);
      if (out(inH, kh) === outH && out(inW, kw) === outW) return { stride, pad };
    }
  }
  return null;
}

/**
 * The conv layers of `model` that run our ops, in forward order, deduplicated by shape class and
 * op, as a training step dispatches them: one step of a throwaway copy at batch 2 under
 * tf.profile (every kernel's input and output shapes) under a tile plan whose table records
 * which shape keys (view included) the dispatch looks up. The oracle for
 * convLayersOf(architecture(model)).
 */
export async function dispatchedConvLayers(model: ModelName): Promise<DiscoveredLayer[]> {
  const m = createModel(model, { ops: "fused", seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const step = makeTrainStep(m, optimizer);
  const batch = 2;
  const [x, y] = tf.tidy(() => [
    tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D,
    tf.cast(tf.oneHot(tf.tensor1d([1, 2], "int32"), 10), "float32") as tf.Tensor2D,
  ]);
  const asked = new Set<string>();
  class RecordingTable extends Map<string, TileConfig> {
    override get(key: string): TileConfig | undefined {
      asked.add(key);
      return undefined;
    }
  }
  m.tiles = tilePlan(backendAdapterKind(tf.backend()), { conv: new RecordingTable() });
  let kernels;
  try {
    const info = await tf.profile(() => step(x, y));
    await (info.result as tf.Tensor).data();
    (info.result as tf.Tensor).dispose();
    kernels = info.kernels;
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
    m.dispose();
  }
  const out: DiscoveredLayer[] = [];
  const seen = new Set<string>();
  for (const k of kernels) {
    const op = k.name === CONV_BN_RELU_TRAIN
      ? "bn-relu"
      : k.name === CONV_BIAS_RELU || k.name === CONV_BIAS_RELU_POOL2
      ? "bias-relu"
      : null;
    if (!op) continue;
    const [xs, fs] = k.inputShapes;
    // The conv's output: ConvBiasReluPool2's second output (its first is the pooled tensor).
    const ys = k.outputShapes[k.name === CONV_BIAS_RELU_POOL2 ? 1 : 0];
    const sp = stridePad(xs[1], xs[2], fs[0], fs[1], ys[1], ys[2]);
    if (!sp) continue;
    const layer: ConvLayer = {
      name: `conv${out.length + 1}`,
      op,
      h: xs[1],
      w: xs[2],
      cin: xs[3],
      cout: fs[3],
      kh: fs[0],
      kw: fs[1],
      ...sp,
    };
    const label = `${op} ${layerLabel(layer)}`;
    if (seen.has(label)) continue;
    seen.add(label);
    const g = layerGeometry(layer, batch);
    const views = CONV_VIEWS.filter((v) => asked.has(shapeKey(v, g)));
    if (views.length === 0) continue; // the dispatch does not consult the tiling (naive kernels)
    out.push({ layer, needsDx: views.includes("bwdData"), views });
  }
  return out;
}
