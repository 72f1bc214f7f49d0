// CPU reference of the fused Adam step (see adam_step.ts for the formula). Every intermediate
// is rounded to float32 in the same order as tf.train.adam's separate ops on the CPU backend,
// so on the cpu backend this matches tf.train.adam bit for bit. Mutates `state` and `weights`.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import { type AdamStepAttrs, adamStepKernel, type RefCounted } from "./adam_step.ts";

const f = Math.fround;

/** Host-side scalars of one step, as tfjs rounds them (f32 scalar tensors). */
export function adamScalars(a: AdamStepAttrs) {
  return {
    beta1: f(a.beta1),
    beta2: f(a.beta2),
    oneMinusBeta1: f(1 - a.beta1),
    oneMinusBeta2: f(1 - a.beta2),
    oneMinusAccBeta1: f(1 - f(a.accBeta1)),
    oneMinusAccBeta2: f(1 - f(a.accBeta2)),
    epsilon: f(a.epsilon),
    negLr: f(-a.lr),
    l2: f(a.l2),
  };
}

/** Updates `state` (packed m then v), and each `weights[i]` in place. */
export function adamStepRef(
  state: Float32Array,
  grads: Float32Array[],
  weights: Float32Array[],
  attrs: AdamStepAttrs,
): void {
  const s = adamScalars(attrs);
  const total = state.length / 2;
  let offset = 0;
  weights.forEach((w, i) => {
    const g = grads[i];
    const decay = attrs.decay[i];
    for (let j = 0; j < w.length; j++) {
      const gj = decay ? f(g[j] + f(s.l2 * f(w[j] * 2))) : g[j];
      const at = offset + j;
      const m = f(f(state[at] * s.beta1) + f(gj * s.oneMinusBeta1));
      const v = f(f(state[total + at] * s.beta2) + f(f(gj * gj) * s.oneMinusBeta2));
      state[at] = m;
      state[total + at] = v;
      const mHat = f(m / s.oneMinusAccBeta1);
      const vHat = f(v / s.oneMinusAccBeta2);
      w[j] = f(f(f(mHat / f(f(Math.sqrt(vHat)) + s.epsilon)) * s.negLr) + w[j]);
    }
    offset += w.length;
  });
}

// The cpu kernel: the reference above on the backend's own arrays (moments updated in place).

type CpuBackend = RefCounted & {
  data: { get(id: unknown): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: "float32", values: Float32Array): TensorInfo;
};

/** The CPU backend's own array for `t` (mutated in place). */
function cpuArray(cpu: CpuBackend, t: TensorInfo): Float32Array {
  const v = cpu.data.get(t.dataId).values;
  if (!(v instanceof Float32Array)) throw new Error("AdamStep kernel: float32 tensors only");
  return v;
}

export const adamStepCpu = adamStepKernel("cpu", (backend, k) => {
  const cpu = backend as CpuBackend;
  const weights = k.weights.map((w) => cpuArray(cpu, w).slice());
  adamStepRef(cpuArray(cpu, k.state), k.grads.map((g) => cpuArray(cpu, g)), weights, k.attrs);
  return weights.map((w, i) => cpu.makeTensorInfo(k.weights[i].shape, "float32", w));
});
