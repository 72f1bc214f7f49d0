// Public API of the fused Adam step (float32): one registered kernel, AdamStep, that updates
// every trainable variable of a model, its first and second moments, in place.
//
// Semantics are tf.train.adam's, op for op (each line is one f32 rounding there):
//   g  = grad + l2 * (w * 2)                       (decayed variables: the L2 penalty's gradient)
//   m' = m * beta1 + g * (1 - beta1)
//   v' = v * beta2 + (g * g) * (1 - beta2)
//   w' = ((m' / (1 - beta1^t)) / (sqrt(v' / (1 - beta2^t)) + epsilon)) * -lr + w
// with epsilon outside the square root, beta^t the running products kept by the optimizer
// (src/train/optimizer.ts) and epsilon = the backend's (1e-7 for float32), as tf.train.adam.
//
// Moments live in one packed state tensor [2 * total], updated in place: all first moments back
// to back in variable order, then all second moments. The new weights come back as fresh
// tensors for the optimizer to assign. The WebGPU kernel is in adam_step_webgpu.ts (it
// explains the dispatch plan), the CPU reference in adam_step_ref.ts.

import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";

/**
 * Kernel: inputs {state, stepScalars, g0..gK-1, w0..wK-1}; attrs AdamStepAttrs; outputs [state
 * (updated in place, an alias), w0'..wK-1']. stepScalars is float32 [1 - beta1^t, 1 - beta2^t,
 * -lr] (adamStepScalars of the same attrs): the webgpu kernel reads these three from it, the
 * cpu kernel from the attrs.
 */
export const ADAM_STEP = "AdamStep";

export interface AdamStepAttrs {
  /** Per variable: apply the L2 penalty's gradient l2 * 2w (conv and dense kernels). */
  decay: boolean[];
  l2: number;
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** beta1^t and beta2^t for this step t (1-based), as float32 values. */
  accBeta1: number;
  accBeta2: number;
}

/** Offsets of each variable's block inside the packed moments (m block; v block adds total). */
export function packedOffsets(sizes: number[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const n of sizes) {
    offsets.push(total);
    total += n;
  }
  return { offsets, total };
}

/** The per-step values of `attrs` as the kernels round them: [1 - beta1^t, 1 - beta2^t, -lr]. */
export function adamStepScalars(attrs: AdamStepAttrs): Float32Array<ArrayBuffer> {
  const f = Math.fround;
  return Float32Array.of(f(1 - f(attrs.accBeta1)), f(1 - f(attrs.accBeta2)), f(-attrs.lr));
}

/**
 * One Adam step over `weights` with `grads` (same order and shapes): updates the packed `state`
 * in place and returns the new weights (the caller assigns or disposes them). `stepScalars`:
 * adamStepScalars(attrs) as a tensor when the caller has one (a captured step's input), else made
 * here.
 */
export function adamStep(
  state: tf.Tensor1D,
  grads: tf.Tensor[],
  weights: tf.Tensor[],
  attrs: AdamStepAttrs,
  stepScalars?: tf.Tensor1D,
): tf.Tensor[] {
  if (grads.length !== weights.length || attrs.decay.length !== weights.length) {
    throw new Error(
      `adamStep: ${grads.length} gradients, ${weights.length} weights, ${attrs.decay.length} decay flags`,
    );
  }
  let total = 0;
  weights.forEach((w, i) => {
    const g = grads[i];
    if (w.dtype !== "float32" || g.dtype !== "float32") {
      throw new Error(`adamStep: variable ${i} is ${w.dtype}, gradient ${g.dtype} (float32 only)`);
    }
    if (g.shape.join(",") !== w.shape.join(",")) {
      throw new Error(`adamStep: gradient ${i} has shape [${g.shape}], weight [${w.shape}]`);
    }
    total += w.size;
  });
  if (state.rank !== 1 || state.size !== 2 * total) {
    throw new Error(`adamStep: state has shape [${state.shape}], want [${2 * total}]`);
  }
  const scalars = stepScalars ?? tf.tensor1d(adamStepScalars(attrs));
  const inputs: Record<string, tf.Tensor> = { state, stepScalars: scalars };
  grads.forEach((g, i) => (inputs[`g${i}`] = g));
  weights.forEach((w, i) => (inputs[`w${i}`] = w));
  const [alias, ...next] = tf.engine().runKernel(ADAM_STEP, inputs, { ...attrs }) as tf.Tensor[];
  alias.dispose(); // `state` itself
  if (scalars !== stepScalars) scalars.dispose();
  return next;
}

/** What both kernels take from their inputs and attrs: the state, then g_i and w_i in order. */
export interface AdamStepKernelInputs {
  state: TensorInfo;
  stepScalars: TensorInfo;
  grads: TensorInfo[];
  weights: TensorInfo[];
  attrs: AdamStepAttrs;
}

export function adamStepKernelInputs(
  inputs: Record<string, TensorInfo>,
  attrs?: NamedAttrMap,
): AdamStepKernelInputs {
  if (!attrs) throw new Error("AdamStep kernel: missing attrs");
  const a = attrs as unknown as AdamStepAttrs;
  const state = inputs.state;
  if (!state) throw new Error("AdamStep kernel: missing input state");
  const stepScalars = inputs.stepScalars;
  if (!stepScalars) throw new Error("AdamStep kernel: missing input stepScalars");
  const grads: TensorInfo[] = [];
  const weights: TensorInfo[] = [];
  for (let i = 0; i < a.decay.length; i++) {
    const g = inputs[`g${i}`], w = inputs[`w${i}`];
    if (!g || !w) throw new Error(`AdamStep kernel: missing input g${i} or w${i}`);
    grads.push(g);
    weights.push(w);
  }
  return { state, stepScalars, grads, weights, attrs: a };
}

/** The backends' reference counting, raised for the state output (an alias of the input). */
export type RefCounted = { incRef(dataId: unknown): void };

/**
 * AdamStep on one backend: `run` updates the state in place and returns the new weights; the
 * kernel's outputs are an alias of the state (refcount raised, like reshape), then those weights.
 */
export function adamStepKernel(
  backendName: "webgpu" | "cpu",
  run: (backend: unknown, k: AdamStepKernelInputs) => TensorInfo[],
): KernelConfig {
  return {
    kernelName: ADAM_STEP,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const k = adamStepKernelInputs(inputs as Record<string, TensorInfo>, attrs);
      const weights = run(backend, k);
      (backend as unknown as RefCounted).incRef(k.state.dataId);
      return [{ dataId: k.state.dataId, shape: k.state.shape, dtype: "float32" }, ...weights];
    },
  };
}
