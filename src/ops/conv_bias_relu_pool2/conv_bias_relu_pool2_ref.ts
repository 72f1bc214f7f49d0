// The cpu kernels of convBiasReluPool2 (conv_bias_relu_pool2.ts): the references of its parts
// composed (conv + bias + ReLU, then the pool; the pool gradient, then the bias + ReLU gradient).

import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { geometryOf } from "../conv_bias_relu/conv_bias_relu.ts";
import { convBiasReluRef } from "../conv_bias_relu/conv_bias_relu_ref.ts";
import { maxPool2GradRef, maxPool2Ref, maxPool2Shape } from "../max_pool2/max_pool2_ref.ts";
import { biasActGradRef } from "../bias_act_grad/bias_act_grad_ref.ts";
import {
  CONV_BIAS_RELU_POOL2,
  gradInputs,
  MAX_POOL2_RELU_BIAS_GRAD,
} from "./conv_bias_relu_pool2.ts";

export const convBiasReluPool2Cpu = cpuKernel(CONV_BIAS_RELU_POOL2, (inputs, cpu, attrs) => {
  const { g, x, filter, bias } = geometryOf(inputs, attrs as NamedAttrMap);
  const v = (t: TensorInfo) => Float32Array.from(cpuValues(cpu, t));
  const y = convBiasReluRef(v(x), v(filter), v(bias), g);
  const yShape = [g.batch, g.outH, g.outW, g.outC];
  return [
    cpu.makeTensorInfo(maxPool2Shape(yShape), "float32", maxPool2Ref(y, yShape)),
    cpu.makeTensorInfo(yShape, "float32", y),
  ];
});

export const maxPool2ReluBiasGradCpu = cpuKernel(MAX_POOL2_RELU_BIAS_GRAD, (inputs, cpu) => {
  const { dy, y } = gradInputs(inputs);
  const yv = cpuValues(cpu, y);
  const routed = maxPool2GradRef(cpuValues(cpu, dy), yv, y.shape);
  const { dz, dbias } = biasActGradRef(routed, yv, y.shape[3], "relu");
  return [
    cpu.makeTensorInfo(y.shape, "float32", dz),
    cpu.makeTensorInfo([y.shape[3]], "float32", dbias),
  ];
});
