// Inputs of the conv + bias tests (conv_bias_relu_test.ts, and its pool2 variant's in
// conv_bias_relu_pool2/): a ConvCase's geometry and seeded values, and their tensors.

import * as tf from "@tensorflow/tfjs-core";
import { type ConvGeometry, convGeometry } from "../conv/geometry.ts";
import { type ConvCase, seededUniform } from "../../../test/helpers/op_check.ts";

export interface ConvBiasInputs {
  c: ConvCase;
  g: ConvGeometry;
  /** (N, H, W, Cin) ~ U(-1, 1) from c.seed. */
  x: Float32Array;
  /** (KH, KW, Cin, Cout) ~ U(-1, 1) from c.seed + 1. */
  filter: Float32Array;
  /** (Cout) ~ U(-0.5, 0.5) from c.seed + 2 (c.seed + 3 is left for the output gradient). */
  bias: Float32Array;
}

export function caseGeometry(c: ConvCase): ConvGeometry {
  return convGeometry([c.n, c.h, c.w, c.cin], [c.kh, c.kw, c.cin, c.cout], c.strides, c.pad);
}

export function convBiasInputs(c: ConvCase): ConvBiasInputs {
  return {
    c,
    g: caseGeometry(c),
    x: seededUniform(c.n * c.h * c.w * c.cin, c.seed),
    filter: seededUniform(c.kh * c.kw * c.cin * c.cout, c.seed + 1),
    bias: seededUniform(c.cout, c.seed + 2, -0.5, 0.5),
  };
}

/** x, filter and bias as tensors (the caller disposes them). */
export function convBiasTensors(d: ConvBiasInputs): [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D] {
  const { c } = d;
  return [
    tf.tensor4d(d.x, [c.n, c.h, c.w, c.cin]),
    tf.tensor4d(d.filter, [c.kh, c.kw, c.cin, c.cout]),
    tf.tensor1d(d.bias),
  ];
}
