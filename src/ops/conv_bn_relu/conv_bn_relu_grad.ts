// Backward of the fused conv + batch-norm (training) + ReLU op: the `ConvBnReluTrainGrad` kernel
// (webgpu: WGSL passes in conv_bn_relu_bwd.ts; cpu: the plain-loop reference) and the gradient
// of `ConvBnReluTrain`, so tf.grads / tf.variableGrads / optimizers differentiate the fused op.
//
// Gradients flow from the `y` output only. The `z` and `stats` outputs (pre-normalisation conv
// output; mean, variance, invStd) exist for the backward and for the running-average update of
// the moving statistics, which is not differentiated: gradients arriving through them are
// ignored. The optional running-statistics inputs (movingMean, movingVariance) do not affect y:
// their gradient is zero (tfjs asks only when they lead to a differentiated variable). The batch statistics themselves are differentiated through `y` (full training-mode
// batch-norm backward, see conv_bn_relu_grad_ref.ts).

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import type { ConvGeometry } from "../conv/geometry.ts";
import {
  convBnReluFilterGradsWebGPU,
  type ConvBnReluGradTensors,
  convBnReluParamGradsWebGPU,
  convBnReluTrainGradWebGPU,
} from "./conv_bn_relu_bwd.ts";
import { bnReluBackwardRef, convBackpropRef, convBnReluGradRef } from "./conv_bn_relu_grad_ref.ts";
import { convBackpropData } from "../conv_backprop/conv_backprop.ts";
import { DEFAULT_EPSILON } from "./conv_bn_relu_stock.ts";
import { CONV_BN_RELU_TRAIN, type ConvBnReluKernelAttrs } from "./conv_bn_relu.ts";
import type { OpKernels } from "../backend/registration.ts";
import { checkShape, convAttrs, kernelGeometry } from "../conv/attrs.ts";

/**
 * Kernel name of the backward: inputs {dy, x, filter, gamma, beta, z, stats}, attrs as the forward
 * (ConvBnReluKernelAttrs), outputs [dx, dfilter, dgamma, dbeta].
 */
export const CONV_BN_RELU_TRAIN_GRAD = "ConvBnReluTrainGrad";
/** Inputs and attrs as ConvBnReluTrainGrad; outputs [dz, dfilter, dgamma, dbeta]. */
export const CONV_BN_RELU_TRAIN_PARAM_GRADS = "ConvBnReluTrainParamGrads";
/** Inputs and attrs as ConvBnReluTrainGrad; outputs [dfilter, dgamma, dbeta] (no dz pass). */
export const CONV_BN_RELU_TRAIN_FILTER_GRADS = "ConvBnReluTrainFilterGrads";

type GradInputs = Record<keyof ConvBnReluGradTensors, TensorInfo>;
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
function validate(inputs: GradInputs, attrs: ConvBnReluKernelAttrs) {
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

function kernelAttrs(attrs: NamedAttrMap = {}): ConvBnReluKernelAttrs {
  return {
    ...convAttrs(attrs),
    epsilon: (attrs.epsilon as number | undefined) ?? DEFAULT_EPSILON,
    inputGradient: (attrs.inputGradient as boolean | undefined) ?? true,
  };
}

type InputValues = (name: keyof ConvBnReluGradTensors) => ArrayLike<number>;

/**
 * One backward kernel on webgpu and cpu: both validate the inputs the same way; the cpu
 * reference returns its outputs as [shape, values] pairs.
 */
function gradKernels(
  kernelName: string,
  webgpu: (backend: WebGPUBackend, ins: GradInputs, g: ConvGeometry) => TensorInfo[],
  cpuRef: (
    values: InputValues,
    ins: GradInputs,
    g: ConvGeometry,
  ) => [number[], ArrayLike<number>][],
): [webgpu: tf.KernelConfig, cpu: tf.KernelConfig] {
  const onWebgpu: tf.KernelConfig = {
    kernelName,
    backendName: "webgpu",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const ins = inputs as unknown as GradInputs;
      const g = validate(ins, kernelAttrs(attrs));
      return webgpu(backend as unknown as WebGPUBackend, ins, g);
    },
  };
  const onCpu = cpuKernel(kernelName, (inputs, cpu, attrs) => {
    const ins = inputs as unknown as GradInputs;
    const g = validate(ins, kernelAttrs(attrs as NamedAttrMap));
    const values: InputValues = (name) => cpuValues(cpu, ins[name]);
    return cpuRef(values, ins, g).map(([shape, v]) =>
      cpu.makeTensorInfo([...shape], "float32", Float32Array.from(v))
    );
  });
  return [onWebgpu, onCpu];
}

/** CPU reference of the parameter gradients: dz (BN + ReLU backward), then dfilter from it. */
function paramGradsRef(values: InputValues, g: ConvGeometry) {
  const bn = bnReluBackwardRef(
    values("dy"),
    values("z"),
    values("stats"),
    values("gamma"),
    values("beta"),
  );
  const { dfilter } = convBackpropRef(bn.dz, values("x"), null, g);
  return { ...bn, dfilter };
}

const [trainGradWebgpu, trainGradCpu] = gradKernels(
  CONV_BN_RELU_TRAIN_GRAD,
  convBnReluTrainGradWebGPU,
  (values, ins, g) => {
    const r = convBnReluGradRef({
      dy: values("dy"),
      x: values("x"),
      filter: values("filter"),
      gamma: values("gamma"),
      beta: values("beta"),
      z: values("z"),
      stats: values("stats"),
    }, g);
    return [
      [ins.x.shape, r.dx],
      [ins.filter.shape, r.dfilter],
      [ins.gamma.shape, r.dgamma],
      [ins.beta.shape, r.dbeta],
    ];
  },
);

const [paramGradsWebgpu, paramGradsCpu] = gradKernels(
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
  convBnReluParamGradsWebGPU,
  (values, ins, g) => {
    const r = paramGradsRef(values, g);
    return [
      [ins.dy.shape, r.dz],
      [ins.filter.shape, r.dfilter],
      [ins.gamma.shape, r.dgamma],
      [ins.beta.shape, r.dbeta],
    ];
  },
);

const [filterGradsWebgpu, filterGradsCpu] = gradKernels(
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  convBnReluFilterGradsWebGPU,
  (values, ins, g) => {
    const r = paramGradsRef(values, g);
    return [[ins.filter.shape, r.dfilter], [ins.gamma.shape, r.dgamma], [ins.beta.shape, r.dbeta]];
  },
);

/** Runs the backward kernel: [dx, dfilter, dgamma, dbeta] for dy = dLoss/dy. */
export function convBnReluTrainGrad(
  t: Record<keyof ConvBnReluGradTensors, tf.Tensor>,
  attrs: ConvBnReluKernelAttrs,
): [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D] {
  const outs = tf.engine().runKernel(
    CONV_BN_RELU_TRAIN_GRAD,
    t as unknown as tf.NamedTensorMap,
    attrs as unknown as NamedAttrMap,
  ) as tf.Tensor[];
  return outs as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
}

const convBnReluTrainGradient: tf.GradConfig = {
  kernelName: CONV_BN_RELU_TRAIN,
  inputsToSave: ["x", "filter", "gamma", "beta"],
  outputsToSave: [false, true, true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    // Multi-output kernel: dy = [dL/dy, dL/dz, dL/dstats]; only dL/dy is propagated (see top).
    const dyY = Array.isArray(dy) ? dy[0] : dy;
    const [x, filter, gamma, beta, z, stats] = saved;
    // The parameter gradients and dz run once, eagerly; they live in the backward pass's tidy
    // scope (those tfjs asks for are returned, the rest disposed with it). dx runs only if tfjs
    // calls the x thunk, i.e. if x leads to a variable (not for the model-input layer).
    const ka = kernelAttrs(attrs);
    const inputs = { dy: dyY, x, filter, gamma, beta, z, stats };
    const movingGrads = {
      movingMean: () => tf.zerosLike(gamma),
      movingVariance: () => tf.zerosLike(gamma),
    };
    if (!ka.inputGradient) {
      const [dfilter, dgamma, dbeta] = tf.engine().runKernel(
        CONV_BN_RELU_TRAIN_FILTER_GRADS,
        inputs,
        ka as unknown as NamedAttrMap,
      ) as tf.Tensor[];
      return {
        x: () => {
          throw new Error(
            "convBnReluTrain: the gradient w.r.t. x was requested from a layer built with " +
              "inputGradient: false",
          );
        },
        filter: () => dfilter,
        gamma: () => dgamma,
        beta: () => dbeta,
        ...movingGrads,
      };
    }
    const [dz, dfilter, dgamma, dbeta] = tf.engine().runKernel(
      CONV_BN_RELU_TRAIN_PARAM_GRADS,
      { dy: dyY, x, filter, gamma, beta, z, stats },
      ka as unknown as NamedAttrMap,
    ) as tf.Tensor[];
    return {
      x: () => convBackpropData(dz as tf.Tensor4D, filter as tf.Tensor4D, x.shape, ka),
      filter: () => dfilter,
      gamma: () => dgamma,
      beta: () => dbeta,
      ...movingGrads,
    };
  },
};

/** The fused block's backward kernels and the forward kernel's gradient; src/ops/registry.ts registers them. */
export const convBnReluBackwardKernels: OpKernels = {
  webgpu: [trainGradWebgpu, paramGradsWebgpu, filterGradsWebgpu],
  cpu: [trainGradCpu, paramGradsCpu, filterGradsCpu],
  gradients: [convBnReluTrainGradient],
};
