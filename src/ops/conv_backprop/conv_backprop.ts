// The two convolution backprops as tfjs kernels of their own, shared by the conv ops' gradients
// (conv + BN + ReLU, conv + bias + ReLU): webgpu runs conv/passes.ts (generated tiled kernels or
// the naive oracle), cpu the float64 reference (convBackpropRef).
//   ConvBackpropData    {dz, filter}; attrs {strides, pad, inShape: [N, H, W, Cin]} -> dx
//   ConvBackpropFilter  {dz, x};      attrs {strides, pad, filterShape}               -> dfilter
// A gradient calls them inside its x / filter thunks, so tfjs runs each only when that input
// needs a gradient (dx of the model-input layer never runs).

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import type { ConvGeometry } from "../conv/geometry.ts";
import { convBackpropRef } from "../conv_bn_relu/conv_bn_relu_grad_ref.ts";
import { runBackpropData, runBackpropFilter } from "../conv/passes.ts";
import type { OpKernels } from "../backend/registration.ts";
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

const dataGeometry = (inputs: tf.NamedTensorInfoMap, attrs: NamedAttrMap = {}) =>
  geometry(
    CONV_BACKPROP_DATA,
    inputs.dz,
    inputs.filter,
    attrs.inShape as number[],
    inputs.filter?.shape ?? [],
    attrs,
  );
const filterGeometry = (inputs: tf.NamedTensorInfoMap, attrs: NamedAttrMap = {}) =>
  geometry(
    CONV_BACKPROP_FILTER,
    inputs.dz,
    inputs.x,
    inputs.x?.shape ?? [],
    attrs.filterShape as number[],
    attrs,
  );

/**
 * One backprop's kernels on webgpu and cpu; `ref` computes the output on the host from dz's and
 * the other input's values.
 */
function backpropKernels(
  kernelName: string,
  geometryOf: typeof dataGeometry,
  webgpu: (
    backend: WebGPUBackend,
    dz: TensorInfo,
    other: TensorInfo,
    g: ConvGeometry,
  ) => TensorInfo,
  ref: (dz: ArrayLike<number>, other: ArrayLike<number>, g: ConvGeometry) => {
    shape: number[];
    values: ArrayLike<number>;
  },
): [webgpu: tf.KernelConfig, cpu: tf.KernelConfig] {
  const onWebgpu: tf.KernelConfig = {
    kernelName,
    backendName: "webgpu",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { g, dz, other } = geometryOf(inputs, attrs);
      return webgpu(backend as unknown as WebGPUBackend, dz, other, g);
    },
  };
  const onCpu = cpuKernel(kernelName, (inputs, cpu, attrs) => {
    const { g, dz, other } = geometryOf(inputs, attrs as NamedAttrMap);
    const out = ref(cpuValues(cpu, dz), cpuValues(cpu, other), g);
    return cpu.makeTensorInfo(out.shape, "float32", Float32Array.from(out.values));
  });
  return [onWebgpu, onCpu];
}

const [backpropDataWebgpu, backpropDataCpu] = backpropKernels(
  CONV_BACKPROP_DATA,
  dataGeometry,
  runBackpropData,
  (dz, filter, g) => ({
    shape: [g.batch, g.inH, g.inW, g.inC],
    values: convBackpropRef(dz, null, filter, g).dx,
  }),
);

const [backpropFilterWebgpu, backpropFilterCpu] = backpropKernels(
  CONV_BACKPROP_FILTER,
  filterGeometry,
  runBackpropFilter,
  (dz, x, g) => ({
    shape: [g.kH, g.kW, g.inC, g.outC],
    values: convBackpropRef(dz, x, null, g).dfilter,
  }),
);

/** The two backprops' kernels (no gradients: nothing differentiates through them). */
export const convBackpropKernels: OpKernels = {
  webgpu: [backpropDataWebgpu, backpropFilterWebgpu],
  cpu: [backpropDataCpu, backpropFilterCpu],
  gradients: [],
};

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
