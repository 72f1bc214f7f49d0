// CPU reference of dropout (dropout.ts): the same mask as the WGSL, element by element, and the
// cpu kernel built on it.

import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { type DropoutAttrs, dropoutConstants, hash32, SEEDED_DROPOUT } from "./dropout.ts";

/** True where element `index` is kept (the mask of src/ops/dropout/dropout.wgsl). */
export function dropoutKeeps(key: number, threshold: number, index: number): boolean {
  return hash32((hash32((index ^ key) >>> 0) + key) >>> 0) >= threshold;
}

/** CPU reference: y[i] = f32(x[i] * (kept ? scale : 0)). */
export function dropoutRef(x: ArrayLike<number>, a: DropoutAttrs): Float32Array {
  const { key, threshold, scale } = dropoutConstants(a);
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * (dropoutKeeps(key, threshold, i) ? scale : 0);
  return y;
}

export const seededDropoutCpu = cpuKernel(
  SEEDED_DROPOUT,
  ({ x }, cpu, attrs) =>
    cpu.makeTensorInfo(x.shape, "float32", dropoutRef(cpuValues(cpu, x), attrs as DropoutAttrs)),
);
