// The three Fashion-MNIST models, built functionally from named variables.
//
//   baseline  conv32-pool-conv64-pool-dense128-dense10, ~225k params (conv + bias + ReLU: our
//             generated kernels, or tfjs's fused conv2d with --ops stock)
//   enhanced  [cbr32 cbr32] pool [cbr64 cbr64] pool, dropout, dense128, dropout, dense10, ~0.47M
//   wide      [cbr64 cbr64] pool [cbr128 cbr128] pool [cbr256 cbr256], global avg pool,
//             dropout, dense10, ~1.15M (meant for augmentation)
// cbr = conv 3x3 + batch norm + ReLU: our fused op (`ops: "fused"`) or the stock composite.

import * as tf from "@tensorflow/tfjs-core";
import {
  convBnRelu,
  convRelu,
  convReluPool2,
  type ConvShape,
  dense,
  dropout,
  flatten,
  globalAvgPool,
  type Layer,
  maxPool2,
  maxPool2Dropout,
  type OpsKind,
} from "./layers.ts";
import { type NamedVariable, ParamStore } from "./params.ts";
import { deriveSeed, Rng } from "../random.ts";
import type { TilePlan } from "../ops/conv/tile_plan.ts";

export type { OpsKind } from "./layers.ts";
export const MODEL_NAMES = ["baseline", "enhanced", "wide"] as const;
export type ModelName = typeof MODEL_NAMES[number];

export interface ModelOptions {
  ops?: OpsKind;
  seed?: number;
  dropout?: number;
  /** L2 weight-decay coefficient: the penalty l2 * sum(w^2) over conv/dense kernels. */
  l2?: number;
}

export interface ModelConfig {
  name: ModelName;
  ops: OpsKind;
  seed: number;
  dropout: number;
  l2: number;
}

export interface Model {
  name: ModelName;
  config: ModelConfig;
  /** Logits [N, 10]. Training mode uses batch statistics and updates BN moving averages. */
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /** Softmax probabilities [N, 10] in inference mode. */
  predict(x: tf.Tensor4D): tf.Tensor2D;
  trainableVariables: tf.Variable[];
  /** Every variable (trainable and BN moving statistics) under its stable checkpoint name. */
  variables: NamedVariable[];
  /** The L2 penalty as a scalar, or null when l2 = 0. */
  regularizationLoss(): tf.Scalar | null;
  /** Number of scalars in all variables (trainable and not). */
  paramCount: number;
  /** Draws dropout seeds; the training loop reseeds it per step for reproducible resumes. */
  rng: Rng;
  /**
   * The tile plan the model's conv and dense ops run under (src/ops/conv/tile_plan.ts): the
   * autotuner's for this adapter, or undefined for the adapter's defaults.
   */
  tiles: TilePlan | undefined;
  dispose(): void;
}

/** Default dropout per model when the caller does not choose one. */
export const DEFAULT_DROPOUT: Record<ModelName, number> = { baseline: 0, enhanced: 0.3, wide: 0.3 };

/** One layer of a model, in build order; conv shapes worked out from the 28x28x1 input. */
export type LayerSpec =
  | { kind: "conv-relu" | "conv-bn-relu"; name: string; shape: ConvShape }
  | { kind: "dense"; name: string; inF: number; outF: number; relu: boolean }
  | { kind: "max-pool" | "flatten" | "global-avg-pool" | "dropout" };

/** What `createModel(name)` builds: the single description of each architecture. */
export function architecture(name: ModelName): LayerSpec[] {
  const specs: LayerSpec[] = [];
  let [h, w, c] = [28, 28, 1];
  const conv = (
    kind: "conv-relu" | "conv-bn-relu",
    id: string,
    cout: number,
    pad: "same" | "valid",
  ) => {
    const shape: ConvShape = { h, w, cin: c, cout, k: 3, stride: 1, pad };
    specs.push({ kind, name: id, shape });
    [h, w] = [h, w].map((n) => pad === "same" ? n : n - shape.k + 1);
    c = cout;
  };
  const pool = () => {
    specs.push({ kind: "max-pool" });
    [h, w] = [h, w].map((n) => Math.floor(n / 2));
  };
  const dense = (id: string, inF: number, outF: number, relu: boolean) =>
    specs.push({ kind: "dense", name: id, inF, outF, relu });
  if (name === "baseline") {
    conv("conv-relu", "conv1", 32, "valid"); // 26x26
    pool(); // 13x13
    conv("conv-relu", "conv2", 64, "valid"); // 11x11
    pool(); // 5x5
    specs.push({ kind: "flatten" }, { kind: "dropout" });
    dense("dense1", h * w * c, 128, true);
    dense("logits", 128, 10, false);
    return specs;
  }
  const stages = name === "enhanced" ? [[32, 32], [64, 64]] : [[64, 64], [128, 128], [256, 256]];
  stages.forEach((widths, s) => {
    widths.forEach((cout, i) => conv("conv-bn-relu", `block${s + 1}/conv${i + 1}`, cout, "same"));
    if (s < 2) pool(); // 28 -> 14 -> 7
  });
  if (name === "enhanced") {
    specs.push({ kind: "flatten" }, { kind: "dropout" });
    dense("dense1", h * w * c, 128, true);
    specs.push({ kind: "dropout" });
    dense("logits", 128, 10, false);
  } else {
    specs.push({ kind: "global-avg-pool" }, { kind: "dropout" });
    dense("logits", c, 10, false);
  }
  return specs;
}

/** The conv + batch-norm + ReLU layers of a model (where `--ops fused` makes a difference). */
export function convBnReluShapes(name: ModelName): ConvShape[] {
  return architecture(name).flatMap((l) => l.kind === "conv-bn-relu" ? [l.shape] : []);
}

export function createModel(name: ModelName, opts: ModelOptions = {}): Model {
  if (!MODEL_NAMES.includes(name)) {
    throw new Error(`unknown model "${name}" (expected ${MODEL_NAMES.join("|")})`);
  }
  const config: ModelConfig = {
    name,
    ops: opts.ops ?? "fused",
    seed: opts.seed ?? 1,
    dropout: opts.dropout ?? DEFAULT_DROPOUT[name],
    l2: opts.l2 ?? 0,
  };
  // Separate streams: init depends only on the seed, not on how dropout was used.
  const store = new ParamStore(new Rng(deriveSeed(config.seed, 1)));
  const rng = new Rng(deriveSeed(config.seed, 2));
  const layers = buildLayers(store, config, rng);
  const apply = (x: tf.Tensor4D, training: boolean) => {
    const mode = { training, tiles: model.tiles };
    return tf.tidy(() => layers.reduce((h: tf.Tensor, layer) => layer(h, mode), x) as tf.Tensor2D);
  };
  const decayed = store.decayed;
  const model: Model = {
    name,
    config,
    apply,
    predict: (x) => tf.tidy(() => tf.softmax(apply(x, false))),
    trainableVariables: store.trainable,
    variables: store.entries,
    regularizationLoss: () =>
      config.l2 > 0 && decayed.length > 0
        ? tf.tidy(() => tf.mul(tf.addN(decayed.map((w) => tf.sum(tf.square(w)))), config.l2))
        : null,
    paramCount: store.paramCount(),
    rng,
    tiles: undefined,
    dispose: () => store.dispose(),
  };
  return model;
}

function buildLayers(store: ParamStore, c: ModelConfig, rng: Rng): Layer[] {
  const specs = architecture(c.name);
  // The first conv reads the images: nothing needs its input gradient.
  const firstConv = specs.findIndex((l) => l.kind === "conv-relu" || l.kind === "conv-bn-relu");
  const layer = (l: LayerSpec, i: number): Layer => {
    switch (l.kind) {
      case "conv-relu":
        return convRelu(store, l.name, l.shape, c.ops);
      case "conv-bn-relu":
        return convBnRelu(store, l.name, l.shape, c.ops, i !== firstConv);
      case "dense":
        return dense(store, l.name, l.inF, l.outF, l.relu, c.ops);
      case "max-pool":
        return maxPool2(c.ops);
      case "flatten":
        return flatten();
      case "global-avg-pool":
        return globalAvgPool();
      case "dropout":
        return dropout(c.dropout, rng, c.ops);
    }
  };
  const layers: Layer[] = [];
  for (let i = 0; i < specs.length; i++) {
    const l = specs[i];
    // Fused ops: a conv + bias + ReLU and the pool after it run as one op (same variables).
    if (l.kind === "conv-relu" && c.ops === "fused" && specs[i + 1]?.kind === "max-pool") {
      layers.push(convReluPool2(store, l.name, l.shape));
      i++;
    } else if (
      // ... and a pool, flatten, dropout run as pool + dropout (one op), then flatten.
      l.kind === "max-pool" && c.ops === "fused" && specs[i + 1]?.kind === "flatten" &&
      specs[i + 2]?.kind === "dropout"
    ) {
      layers.push(maxPool2Dropout(c.dropout, rng), flatten());
      i += 2;
    } else {
      layers.push(layer(l, i));
    }
  }
  return layers;
}
