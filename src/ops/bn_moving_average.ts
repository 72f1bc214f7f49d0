// Batch-norm running statistics, one kernel per statistic (BnMovingAverage; webgpu WGSL in
// kernels/bn_moving_average.wgsl, cpu reference below): moving' = moving * m + batch * (1 - m),
// each product and the sum rounded to float32 as tfjs's mul/mul/add on the same values.
//
// Folding the update into the batch-statistics pass of the conv op would save these dispatches
// too, but that pass (src/ops/conv_bn_relu_fwd.ts) belongs to the conv generator; this keeps the
// update separate and small: 2 dispatches per BN layer (mean, variance) instead of 6.

import * as tf from "@tensorflow/tfjs-core";
import { registerKernel, type TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { kernelSource, runProgram } from "./webgpu_program.ts";
import { cpuValues, registerCpuKernel } from "./cpu_kernel.ts";

/** Kernel: inputs {moving, batch} (same 1-D shape); attrs {momentum}; output moving'. */
export const BN_MOVING_AVERAGE = "BnMovingAverage";

const f = Math.fround;

/** CPU reference, rounding like tfjs: f32(f32(moving * m) + f32(batch * f32(1 - m))). */
export function bnMovingAverageRef(
  moving: Float32Array,
  batch: Float32Array,
  momentum: number,
): Float32Array {
  const m = f(momentum), k = f(1 - momentum);
  return moving.map((x, i) => f(f(x * m) + f(batch[i] * k)));
}

class BnMovingAverageProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "bnMovingAverage";
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  variableNames = ["moving", "batch"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "momentum : f32, oneMinusMomentum : f32,";
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatch = [Math.ceil(shape[0] / 64), 1, 1];
  }

  getUserCode(): string {
    return kernelSource("bn_moving_average");
  }
}

/** Returns the updated running statistic (a new tensor: assign it to the variable). */
export function bnMovingAverage(
  moving: tf.Tensor1D,
  batch: tf.Tensor1D,
  momentum: number,
): tf.Tensor1D {
  if (moving.rank !== 1 || batch.shape.join() !== moving.shape.join()) {
    throw new Error(`bnMovingAverage: moving [${moving.shape}] and batch [${batch.shape}] differ`);
  }
  return tf.engine().runKernel(BN_MOVING_AVERAGE, { moving, batch }, { momentum }) as tf.Tensor1D;
}

registerKernel({
  kernelName: BN_MOVING_AVERAGE,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { moving, batch } = inputs as { moving: TensorInfo; batch: TensorInfo };
    const momentum = (attrs as { momentum: number }).momentum;
    return runProgram(backend as WebGPUBackend, new BnMovingAverageProgram(moving.shape), [
      moving,
      batch,
    ], [{ type: "float32", data: [f(momentum)] }, { type: "float32", data: [f(1 - momentum)] }]);
  },
});

registerCpuKernel(BN_MOVING_AVERAGE, ({ moving, batch }, cpu, attrs) => {
  const values = (t: TensorInfo) => Float32Array.from(cpuValues(cpu, t));
  const out = bnMovingAverageRef(
    values(moving),
    values(batch),
    (attrs as { momentum: number }).momentum,
  );
  return cpu.makeTensorInfo(moving.shape, "float32", out);
});
