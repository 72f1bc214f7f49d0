// The two convolution backprops as tfjs kernels of their own, shared by the conv ops' gradients
// (conv + BN + ReLU, conv + bias + ReLU): webgpu (conv_backprop_webgpu.ts) runs conv/passes.ts
// (generated tiled kernels or the naive oracle), cpu the float64 reference (conv_backprop_ref.ts).
//   ConvBackpropData    {dz, filter}; attrs {strides, pad, inShape: [N, H, W, Cin]} -> dx
//   ConvBackpropFilter  {dz, x};      attrs {strides, pad, filterShape}               -> dfilter
// A gradient calls them inside its x / filter thunks, so tfjs runs each only when that input
// needs a gradient (dx of the model-input layer never runs).

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { ConvGeometry } from "../conv/geometry.ts";
import { checkShape, type ConvAttrs, kernelGeometry } from "../conv/attrs.ts";

export const CONV_BACKPROP_DATA = "ConvBackpropData";
export const CONV_BACKPROP_FILTER = "ConvBackpropFilter";

/** Strides and pad, as the backprops take them. */
export type ConvBackpropAttrs = ConvAttrs;

/** Geometry from x's and the filter's shapes; throws naming dz when its shape disagrees. */
function geometry(
  kernel: string,
  dz: TensorInfo | undefined,
  other: TensorInfo | undefined,
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: NamedAttrMap,
): { g: ConvGeometry; dz: TensorInfo; other: TensorInfo } {
  if (!dz || !other) throw new Error(`${kernel}: missing input`);
  const g = kernelGeometry(xShape, filterShape, attrs);
  checkShape(kernel, "dz", dz, [g.batch, g.outH, g.outW, g.outC]);
  for (const t of [dz, other]) {
    if (t.dtype !== "float32") throw new Error(`${kernel}: inputs must be float32`);
  }
  return { g, dz, other };
}

/** ConvBackpropData's inputs and geometry, checked. */
export const dataGeometry = (inputs: tf.NamedTensorInfoMap, attrs: NamedAttrMap = {}) =>
  geometry(
    CONV_BACKPROP_DATA,
    inputs.dz,
    inputs.filter,
    attrs.inShape as number[],
    inputs.filter?.shape ?? [],
    attrs,
  );
/** ConvBackpropFilter's inputs and geometry, checked. */
export const filterGeometry = (inputs: tf.NamedTensorInfoMap, attrs: NamedAttrMap = {}) =>
  geometry(
    CONV_BACKPROP_FILTER,
    inputs.dz,
    inputs.x,
    inputs.x?.shape ?? [],
    attrs.filterShape as number[],
    attrs,
  );

/** dx = conv2d backprop-input of dz for an input of shape `inShape`. */
export function convBackpropData(
  dz: tf.Tensor4D,
  filter: tf.Tensor4D,
  inShape: readonly number[],
  attrs: ConvBackpropAttrs,
): tf.Tensor4D {
  return tf.engine().runKernel(
    CONV_BACKPROP_DATA,
    { dz, filter },
    { ...attrs, inShape: [...inShape] } as unknown as NamedAttrMap,
  ) as tf.Tensor4D;
}

/** dfilter = conv2d backprop-filter of (x, dz) for a filter of shape `filterShape`. */
export function convBackpropFilter(
  dz: tf.Tensor4D,
  x: tf.Tensor4D,
  filterShape: readonly number[],
  attrs: ConvBackpropAttrs,
): tf.Tensor4D {
  return tf.engine().runKernel(
    CONV_BACKPROP_FILTER,
    { dz, x },
    { ...attrs, filterShape: [...filterShape] } as unknown as NamedAttrMap,
  ) as tf.Tensor4D;
}
