// The kernels' inputs as both backends read them: the forward's named inputs, attributes and
// optional running statistics; the backward's seven inputs, checked against x and the filter.

import type { NamedAttrMap, NamedTensorInfoMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { ConvGeometry } from "../conv/geometry.ts";
import { checkShape, kernelGeometry } from "../conv/attrs.ts";
import { CONV_BN_RELU_TRAIN_GRAD, type ConvBnReluKernelAttrs } from "./conv_bn_relu.ts";
import type { ConvBnReluGradTensors } from "./conv_bn_relu_bwd.ts";
import type { MovingStatsInputs } from "./conv_bn_relu_fwd.ts";

/** The named kernel inputs, in order; throws when one is missing. */
export function take(inputs: NamedTensorInfoMap, names: string[]): TensorInfo[] {
  return names.map((name) => {
    const t = inputs[name];
    if (!t) throw new Error(`convBnRelu kernel: missing input ${name}`);
    return t;
  });
}

export function attrsOf(attrs: NamedAttrMap | undefined): ConvBnReluKernelAttrs {
  if (!attrs) throw new Error("convBnRelu kernel: missing attrs {strides, pad}");
  return attrs as unknown as ConvBnReluKernelAttrs;
}

/** The optional running-statistics inputs of ConvBnReluTrain: both or neither. */
export function movingOf(
  inputs: NamedTensorInfoMap,
  attrs?: NamedAttrMap,
): MovingStatsInputs | undefined {
  const { movingMean, movingVariance } = inputs;
  if (!movingMean && !movingVariance) return undefined;
  const momentum = attrsOf(attrs).momentum;
  if (!movingMean || !movingVariance || momentum === undefined) {
    throw new Error(
      "convBnRelu kernel: movingMean, movingVariance and the momentum attr go together",
    );
  }
  return { movingMean, movingVariance, momentum };
}

export function geometryOf(x: TensorInfo, filter: TensorInfo, attrs?: NamedAttrMap): ConvGeometry {
  return kernelGeometry(x.shape, filter.shape, attrsOf(attrs));
}

/** The backward kernels' inputs by name. */
export type GradInputs = Record<keyof ConvBnReluGradTensors, TensorInfo>;
const INPUT_NAMES: (keyof ConvBnReluGradTensors)[] = [
  "dy",
  "x",
  "filter",
  "gamma",
  "beta",
  "z",
  "stats",
];

/** Checks every input's shape against x and filter; throws naming the tensor. */
export function validateGradInputs(inputs: GradInputs, attrs: ConvBnReluKernelAttrs) {
  for (const name of INPUT_NAMES) {
    if (!inputs[name]) throw new Error(`${CONV_BN_RELU_TRAIN_GRAD}: missing input '${name}'`);
  }
  const g = kernelGeometry(inputs.x.shape, inputs.filter.shape, attrs);
  const zShape = [g.batch, g.outH, g.outW, g.outC];
  const expected: [keyof ConvBnReluGradTensors, number[]][] = [
    ["dy", zShape],
    ["z", zShape],
    ["gamma", [g.outC]],
    ["beta", [g.outC]],
    ["stats", [3, g.outC]],
  ];
  for (const [name, shape] of expected) {
    checkShape(CONV_BN_RELU_TRAIN_GRAD, name, inputs[name], shape);
  }
  for (const name of INPUT_NAMES) {
    if (inputs[name].dtype !== "float32") {
      throw new Error(`${CONV_BN_RELU_TRAIN_GRAD}: ${name} must be float32`);
    }
  }
  return g;
}
