// What our ops' CPU kernels (the references the WebGPU kernels are checked against) need from
// tfjs's CPU backend: a kernel registration that hands over the backend typed, and host values.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";

/** The part of tfjs-backend-cpu's MathBackendCPU these kernels use. */
export type CpuBackend = {
  data: { get(id: unknown): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: "float32", values: Float32Array): TensorInfo;
};

/** The backend's own array of `t` (float32 values, or int32 labels read by index): never write it. */
export const cpuValues = (cpu: CpuBackend, t: TensorInfo) =>
  cpu.data.get(t.dataId).values as Float32Array;

/** `kernelName` on the "cpu" backend, for the registration table. */
export function cpuKernel(
  kernelName: string,
  kernel: (
    inputs: Record<string, TensorInfo>,
    cpu: CpuBackend,
    attrs: unknown,
  ) => TensorInfo | TensorInfo[],
): KernelConfig {
  return {
    kernelName,
    backendName: "cpu",
    kernelFunc: ({ inputs, backend, attrs }) =>
      kernel(inputs as Record<string, TensorInfo>, backend as unknown as CpuBackend, attrs),
  };
}
