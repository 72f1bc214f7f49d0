// Shared pieces of the conv + bias tests (conv_bias_relu_test.ts, and its pool2 variant's in
// conv_bias_relu_pool2/): a ConvCase's geometry and seeded inputs, the op's output and
// gradients on the current backend, and the tolerances.

import * as tf from "@tensorflow/tfjs-core";
import { type ConvGeometry, convGeometry } from "../conv/geometry.ts";
import {
  type ConvCase,
  type OpTolerance,
  outputAndGrads,
  seededUniform,
} from "../../../test/helpers/op_check.ts";

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

/** The op's output (named `Out`: y, or the pooled p) and its three gradients. */
export type ConvBiasGrads<Out extends string> = Record<
  Out | "dx" | "dfilter" | "dbias",
  Float32Array
>;

export type ConvBiasFn = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor;

/**
 * f(x, filter, bias) and tf.grads of sum(f * dOut) w.r.t. x, filter and bias on the current
 * backend; `dOut` is the output gradient, of shape `outShape`.
 */
export async function convBiasGrads<Out extends string>(
  d: ConvBiasInputs,
  out: Out,
  f: ConvBiasFn,
  dOut: Float32Array,
  outShape: number[],
): Promise<ConvBiasGrads<Out>> {
  const { c } = d;
  const x = tf.tensor4d(d.x, [c.n, c.h, c.w, c.cin]);
  const w = tf.tensor4d(d.filter, [c.kh, c.kw, c.cin, c.cout]);
  const b = tf.tensor1d(d.bias);
  const dOutT = tf.tensor(dOut, outShape);
  const [y, dx, dfilter, dbias] = await outputAndGrads(f, [x, w, b], dOutT);
  tf.dispose([x, w, b, dOutT]);
  return { [out]: y, dx, dfilter, dbias } as ConvBiasGrads<Out>;
}

/**
 * |a - e| <= atol + rtol*|e| per result: atol = 1e-6 x the terms behind one element (inputs
 * U(-1, 1): each term <= 1, and float32 rounding of a sum of T of them stays well below
 * T * 2^-24 * the largest partial sum), rtol 1e-4; both x `scale` (10 against tfjs's stock
 * ops, which round in float32 too). `out` names the output.
 */
export function convBiasTolerances(
  g: ConvGeometry,
  out: string,
  scale = 1,
): Record<string, OpTolerance> {
  const rtol = 1e-4 * scale;
  return {
    [out]: { atol: 1e-6 * scale * g.kH * g.kW * g.inC, rtol },
    dx: { atol: 1e-6 * scale * g.kH * g.kW * g.outC, rtol },
    dfilter: { atol: 1e-6 * scale * g.batch * g.outH * g.outW, rtol },
    dbias: { atol: 1e-6 * scale * g.batch * g.outH * g.outW, rtol },
  };
}
