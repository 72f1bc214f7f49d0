// Plain-loop CPU reference of the bias + activation gradient (bias_act_grad.ts): the oracle the
// WebGPU kernel is tested against and the body of its `cpu` registration. Sums in float64.

import type { NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { activationOf, BIAS_ACT_GRAD, sizes } from "./bias_act_grad.ts";

/** The activation after the bias add: ReLU (masked by y > 0) or none. */
export type BiasActivation = "relu" | "linear";

/**
 * Through y = act(z), z = (anything) + bias[c], with dy and y as (rows, c) row-major:
 * dz = dy where y > 0 else 0 (relu) or dy (linear), and dbias[c] = sum over rows of dz.
 */
export function biasActGradRef(
  dy: ArrayLike<number>,
  y: ArrayLike<number> | undefined,
  c: number,
  activation: BiasActivation,
): { dz: Float32Array; dbias: Float32Array } {
  if (activation === "relu" && !y) throw new Error("biasActGradRef: relu needs y");
  const dz = Float32Array.from(
    { length: dy.length },
    (_, i) => (activation === "linear" || y![i] > 0 ? dy[i] : 0),
  );
  const dbias = new Float64Array(c);
  for (let i = 0; i < dz.length; i++) dbias[i % c] += dz[i];
  return { dz, dbias: Float32Array.from(dbias) };
}

/** The cpu kernel: the reference above. */
export const biasActGradCpu = cpuKernel(BIAS_ACT_GRAD, (inputs, cpu, attrs) => {
  const activation = activationOf(attrs as NamedAttrMap);
  const { dy, y, c } = sizes(inputs, activation);
  const v = (t: TensorInfo) => cpuValues(cpu, t);
  const { dz, dbias } = biasActGradRef(v(dy), y && v(y), c, activation);
  const db = cpu.makeTensorInfo([c], "float32", dbias);
  return activation === "relu" ? [cpu.makeTensorInfo(dy.shape, "float32", dz), db] : [db];
});
