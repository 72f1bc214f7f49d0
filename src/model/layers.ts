// Functional layers over named variables. A layer is a closure `(x, mode) => y` that owns its
// variables through the model's ParamStore; `mode` says training or inference and carries the
// tile plan its ops run under (the model's). Conv weights are HWIO ([KH, KW, Cin, Cout]).

import * as tf from "@tensorflow/tfjs-core";
import {
  convBnReluInfer,
  convBnReluTrainWithMovingStats,
} from "../ops/conv_bn_relu/conv_bn_relu.ts";
import {
  convBnReluInferStock,
  convBnReluTrainStock,
} from "../ops/conv_bn_relu/conv_bn_relu_stock.ts";
import { convBiasRelu } from "../ops/conv_bias_relu/conv_bias_relu.ts";
import { convBiasReluPool2 } from "../ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { denseLayer } from "../ops/dense_bias_act/dense_bias_act.ts";
import { dropout as seededDropout, dropoutKeyOf } from "../ops/dropout/dropout.ts";
import { stepInput } from "../tf/step_inputs.ts";
import {
  maxPool2 as maxPool2Op,
  maxPool2Dropout as maxPool2DropoutOp,
} from "../ops/max_pool2/max_pool2.ts";
import type { ParamStore } from "./params.ts";
import type { Rng } from "../random.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

/** How a layer runs: training (batch statistics, dropout) or not, under which tile plan. */
export interface LayerMode {
  training: boolean;
  /** The plan our conv and dense ops run under (undefined: the adapter's defaults). */
  tiles?: TilePlan;
}

export type Layer = (x: tf.Tensor, mode: LayerMode) => tf.Tensor;
export type OpsKind = "fused" | "stock";

/** Keras's default: moving = 0.99 * moving + 0.01 * batch. */
export const BN_MOMENTUM = 0.99;

/** A conv layer's input (NHWC without the batch), output channels, square kernel, stride, pad. */
export interface ConvShape {
  h: number;
  w: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: "same" | "valid";
}

/** The variables of a conv + bias + ReLU layer: HWIO kernel (He normal) and bias (0). */
function convReluVariables(store: ParamStore, name: string, s: ConvShape) {
  const filter = store.heNormal(`${name}/kernel`, [s.k, s.k, s.cin, s.cout], s.k * s.k * s.cin);
  const bias = store.constant(`${name}/bias`, [s.cout], 0);
  return { filter: filter as tf.Tensor4D, bias: bias as tf.Tensor1D };
}

/**
 * Plain conv + bias + ReLU (baseline model): our op (src/ops/conv_bias_relu/conv_bias_relu.ts, the generated
 * conv kernels) or, with `ops: "stock"`, tfjs's fused conv2d.
 */
export function convRelu(store: ParamStore, name: string, s: ConvShape, ops: OpsKind): Layer {
  const { filter, bias } = convReluVariables(store, name, s);
  const attrs = { strides: s.stride, pad: s.pad };
  if (ops === "fused") {
    return (x, { tiles }) => convBiasRelu(x as tf.Tensor4D, filter, bias, { ...attrs, tiles });
  }
  return (x) =>
    tf.fused.conv2d({ x: x as tf.Tensor4D, filter, bias, ...attrs, activation: "relu" });
}

/**
 * Conv + bias + ReLU and the 2x2 max-pool after it as one op (src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts:
 * one backward pass from the pooled gradient to dz and dbias); the same variables as convRelu.
 */
export function convReluPool2(store: ParamStore, name: string, s: ConvShape): Layer {
  const { filter, bias } = convReluVariables(store, name, s);
  const attrs = { strides: s.stride, pad: s.pad };
  return (x, { tiles }) => convBiasReluPool2(x as tf.Tensor4D, filter, bias, { ...attrs, tiles });
}

/**
 * conv (no bias: BN's beta replaces it) + batch norm + ReLU through our fused op or the
 * stock composite. Training mode normalises with batch statistics and folds them into the
 * moving averages (Keras semantics); inference uses the moving averages.
 */
export function convBnRelu(
  store: ParamStore,
  name: string,
  s: ConvShape,
  ops: OpsKind,
  /** false for a layer that reads the model input: its backward then skips dx. */
  inputGradient = true,
): Layer {
  const outC = s.cout;
  const filter = store.heNormal(
    `${name}/kernel`,
    [s.k, s.k, s.cin, outC],
    s.k * s.k * s.cin,
  ) as tf.Variable<tf.Rank.R4>;
  const gamma = store.constant(`${name}/gamma`, [outC], 1) as tf.Variable<tf.Rank.R1>;
  const beta = store.constant(`${name}/beta`, [outC], 0) as tf.Variable<tf.Rank.R1>;
  const movingMean = store.constant(`${name}/moving_mean`, [outC], 0, false) as tf.Variable<
    tf.Rank.R1
  >;
  const movingVar = store.constant(`${name}/moving_variance`, [outC], 1, false) as tf.Variable<
    tf.Rank.R1
  >;
  const infer = ops === "fused" ? convBnReluInfer : convBnReluInferStock;
  const layerAttrs = { strides: s.stride, pad: s.pad, inputGradient };
  return (x, { training, tiles }) => {
    const x4 = x as tf.Tensor4D;
    const attrs = { ...layerAttrs, tiles };
    if (!training) return infer(x4, filter, gamma, beta, movingMean, movingVar, attrs);
    if (ops === "fused") { // the statistics pass updates the running statistics too
      const { y, mean, variance } = convBnReluTrainWithMovingStats(x4, filter, gamma, beta, attrs, {
        mean: movingMean,
        variance: movingVar,
        momentum: BN_MOMENTUM,
      });
      movingMean.assign(mean);
      movingVar.assign(variance);
      tf.dispose([mean, variance]);
      return y;
    }
    const { y, mean, variance } = convBnReluTrainStock(x4, filter, gamma, beta, attrs);
    tf.tidy(() => {
      movingMean.assign(tf.add(tf.mul(movingMean, BN_MOMENTUM), tf.mul(mean, 1 - BN_MOMENTUM)));
      movingVar.assign(tf.add(tf.mul(movingVar, BN_MOMENTUM), tf.mul(variance, 1 - BN_MOMENTUM)));
    });
    mean.dispose();
    variance.dispose();
    return y;
  };
}

/** 2x2 / stride-2 `valid` max-pool: our op (src/ops/max_pool2/max_pool2.ts), or tf.maxPool with "stock". */
export function maxPool2(ops: OpsKind): Layer {
  if (ops === "fused") return (x) => maxPool2Op(x as tf.Tensor4D);
  return (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid");
}

/**
 * The max-pool and the dropout of its (flattened) output as one op (maxPool2Dropout: the mask
 * in the pool's own passes, the same elements as seededDropout would drop); draws its seed when
 * `dropout` would, so runs and resumes see the same sequence of masks.
 */
export function maxPool2Dropout(rate: number, rng: Rng): Layer {
  return (x, { training }) => {
    if (!(training && rate > 0)) return maxPool2Op(x as tf.Tensor4D);
    const { seed, key } = drawDropoutKey(rng);
    return maxPool2DropoutOp(x as tf.Tensor4D, rate, seed, key);
  };
}

/**
 * One seed from `rng` and the mask key it gives, as a step input: a captured step
 * (src/tf/step_capture.ts) draws the next seed from the same `rng` when it replays, so the
 * seeds, and the masks, are the ones the uncaptured steps would draw.
 */
function drawDropoutKey(rng: Rng): { seed: number; key: tf.Tensor1D } {
  const seed = rng.seed();
  const key = stepInput(Int32Array.of(dropoutKeyOf(seed)), {
    produce: () => Int32Array.of(dropoutKeyOf(rng.seed())),
  });
  return { seed, key };
}

export function flatten(): Layer {
  return (x) => tf.reshape(x, [x.shape[0], -1]);
}

export function globalAvgPool(): Layer {
  return (x) => tf.mean(x, [1, 2]);
}

/**
 * Dense layer; `relu` for hidden layers (He init), linear logits otherwise (Glorot). With
 * `ops: "fused"` it runs our GEMM (src/ops/dense_bias_act/dense_bias_act.ts) where that is faster than tfjs's
 * matMul (denseUsesGemm: the autotuner's choice, else the measured rule), else and with
 * `ops: "stock"` tfjs's fused matMul. Same variables either way.
 */
export function dense(
  store: ParamStore,
  name: string,
  inF: number,
  outF: number,
  relu: boolean,
  ops: OpsKind,
): Layer {
  const kernel = relu
    ? store.heNormal(`${name}/kernel`, [inF, outF], inF)
    : store.glorotUniform(`${name}/kernel`, [inF, outF]);
  const bias = store.constant(`${name}/bias`, [outF], 0);
  const activation = relu ? "relu" : "linear";
  return (x, { tiles }) =>
    ops === "fused"
      ? denseLayer(x as tf.Tensor2D, kernel as tf.Tensor2D, bias as tf.Tensor1D, activation, tiles)
      : tf.fused.matMul({ a: x as tf.Tensor2D, b: kernel as tf.Tensor2D, bias, activation });
}

/**
 * Inverted dropout, seeded from the model's RNG (one seed per call) so that a run, and a resumed
 * run, is reproducible: our counter-based kernel (src/ops/dropout/dropout.ts, the same mask on webgpu and
 * cpu, 1 dispatch each way) or, with `ops: "stock"`, tf.dropout (host-drawn noise).
 */
export function dropout(rate: number, rng: Rng, ops: OpsKind = "fused"): Layer {
  const drop = ops === "fused"
    ? (x: tf.Tensor) => {
      const { seed, key } = drawDropoutKey(rng);
      return seededDropout(x, rate, seed, key);
    }
    : (x: tf.Tensor) => tf.dropout(x, rate, undefined, rng.seed());
  return (x, { training }) => (training && rate > 0 ? drop(x) : x);
}
