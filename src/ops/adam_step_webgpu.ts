// WebGPU programs of the fused Adam step (AdamStep, see adam_step.ts) and its kernel
// registrations (webgpu: the programs below; cpu: the reference in adam_step_ref.ts).
//
// A tfjs program has one writable binding (`result`), and a storage buffer may not be bound
// writable and read-only in one dispatch, so each weight tensor needs a dispatch of its own;
// the moments are packed into one state tensor so that one dispatch can update the moments of
// several variables. Plan for K trainable variables:
//   1. adam_moments  in place on the state, grouped: a group takes variables while its inputs
//      (g, plus w for decayed ones) fit the device's storage-buffer limit minus the output
//      (8 - 1 = 7 by default: e.g. 3 decayed + 1 plain, or 7 plain): enhanced's 16 variables
//      (6 decayed) take 4 dispatches.
//   2. adam_weights  one per variable, into a fresh buffer the optimizer assigns to the
//      variable: K dispatches.
// enhanced: 4 + 16 = 20 dispatches per step, where tf.train.adam issues ~14 elementwise
// dispatches per variable plus the L2 penalty's forward and backward (see BENCHMARKS.md).
// The weights are not written in place: tfjs treats tensor data as immutable (a read caches
// the values on the CPU, clones share buffers), and a new buffer from the pool costs nothing
// measurable. The state is ours alone; its CPU cache is dropped after each write.
// Every array is read and written once per pass, so the step is bandwidth-bound and tiny
// next to the convolutions (0.47M parameters: ~11 MB of traffic for enhanced). Measured
// (bench/step_parts_probe.ts, llvmpipe, loaded 2-core machine, enhanced): 87.1 ms and 242
// dispatches for tf.train.adam with the L2 gradient, 45.8 ms and 20 dispatches here. Scalar
// loads; vec4 (fewer loads per element on llvmpipe) is untried.

import { type NamedAttrMap, registerKernel, type TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { ADAM_STEP, type AdamStepAttrs, packedOffsets } from "./adam_step.ts";
import { adamScalars, adamStepRef } from "./adam_step_ref.ts";
import { kernelSource, runProgram, type Uniform } from "./webgpu_program.ts";

type Dispatch = [number, number, number];
const WORKGROUP = 64;
const MAX_GROUPS_PER_DIM = 65535;

function flatDispatch(n: number): Dispatch {
  const groups = Math.max(1, Math.ceil(n / WORKGROUP));
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / y), y, 1];
}

/** One slot of a moments group: a variable's index, element count and whether it decays. */
interface Slot {
  variable: number;
  size: number;
  decay: boolean;
}

/** Splits variables into groups whose bindings (g, plus w when decayed) fit `maxInputs`. */
export function momentGroups(sizes: number[], decay: boolean[], maxInputs: number): Slot[][] {
  const groups: Slot[][] = [];
  let current: Slot[] = [];
  let used = 0;
  sizes.forEach((size, variable) => {
    const need = decay[variable] ? 2 : 1;
    if (used + need > maxInputs && current.length > 0) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push({ variable, size, decay: decay[variable] });
    used += need;
  });
  if (current.length > 0) groups.push(current);
  return groups;
}

/** Pass 1 for one group: kernels/adam_moments.wgsl plus a generated main(). */
export class AdamMomentsProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: Dispatch;
  variableNames: string[];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms: string;
  private slots: Slot[];

  constructor(stateSize: number, slots: Slot[]) {
    this.slots = slots;
    this.outputShape = [stateSize];
    this.variableNames = slots.flatMap((s, k) => (s.decay ? [`g${k}`, `w${k}`] : [`g${k}`]));
    const elements = slots.reduce((a, s) => a + s.size, 0);
    this.dispatch = flatDispatch(elements);
    this.uniforms = "beta1 : f32, beta2 : f32, oneMinusBeta1 : f32, oneMinusBeta2 : f32, " +
      "l2 : f32, total : i32, " + slots.map((_, k) => `end${k} : i32, off${k} : i32, `).join("");
    this.shaderKey = `adamMoments_${slots.map((s) => (s.decay ? "d" : "p")).join("")}`;
  }

  getUserCode(): string {
    const branches = this.slots.map((s, k) => {
      const start = k === 0 ? "0" : `uniforms.end${k - 1}`;
      const g = s.decay ? `decayed(g${k}[j], w${k}[j])` : `g${k}[j]`;
      return `  if (index < uniforms.end${k}) {
    let j = index - ${start};
    updateMoments(uniforms.off${k} + j, ${g});
    return;
  }`;
    });
    return kernelSource("adam_moments") + `\nfn main(index : i32) {\n${branches.join("\n")}\n}\n`;
  }
}

/** Pass 2 for one variable: kernels/adam_weights.wgsl. */
export class AdamWeightsProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "adamWeights";
  dispatchLayout = { x: [0] };
  dispatch: Dispatch;
  variableNames = ["w", "state"];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = "oneMinusAccBeta1 : f32, oneMinusAccBeta2 : f32, epsilon : f32, negLr : f32, " +
    "offset : i32, total : i32, n : i32,";

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1));
  }

  getUserCode(): string {
    return kernelSource("adam_weights");
  }
}

const f32 = (x: number): Uniform => ({ type: "float32", data: [x] });
const i32 = (x: number): Uniform => ({ type: "int32", data: [x] });

/** Storage buffers one program may read next to its output, on this device. */
function maxProgramInputs(backend: WebGPUBackend): number {
  const limit = (backend.device.limits as { maxStorageBuffersPerShaderStage?: number })
    .maxStorageBuffersPerShaderStage ?? 8;
  return limit - 1;
}

type TensorMap = { tensorMap: { get(id: unknown): { values: unknown } } };

/** Runs the whole step on the GPU: the state in place; returns the new weights. */
export function runAdamStep(
  backend: WebGPUBackend,
  state: TensorInfo,
  grads: TensorInfo[],
  weights: TensorInfo[],
  attrs: AdamStepAttrs,
): TensorInfo[] {
  const sizes = weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const { offsets, total } = packedOffsets(sizes);
  const s = adamScalars(attrs);
  for (const group of momentGroups(sizes, attrs.decay, maxProgramInputs(backend))) {
    const inputs = group.flatMap((slot) =>
      slot.decay ? [grads[slot.variable], weights[slot.variable]] : [grads[slot.variable]]
    );
    const uniforms: Uniform[] = [
      f32(s.beta1),
      f32(s.beta2),
      f32(s.oneMinusBeta1),
      f32(s.oneMinusBeta2),
      f32(s.l2),
      i32(total),
    ];
    let end = 0;
    for (const slot of group) {
      end += slot.size;
      uniforms.push(i32(end), i32(offsets[slot.variable]));
    }
    const program = new AdamMomentsProgram(2 * total, group);
    backend.runWebGPUProgram(program, inputs, "float32", uniforms, state);
  }
  // A read of the state (tests, getWeights on the cpu) may have cached stale values.
  (backend as unknown as TensorMap).tensorMap.get(state.dataId).values = null;
  return weights.map((w, i) =>
    runProgram(backend, new AdamWeightsProgram(w.shape), [w, state], [
      f32(s.oneMinusAccBeta1),
      f32(s.oneMinusAccBeta2),
      f32(s.epsilon),
      f32(s.negLr),
      i32(offsets[i]),
      i32(total),
      i32(sizes[i]),
    ])
  );
}

// ---------------------------------------------------------------------------------------------
// Kernel registrations. Outputs: an alias of `state` (refcount raised, like reshape), updated in
// place, then the new weights in input order.

interface KernelInputs {
  state: TensorInfo;
  grads: TensorInfo[];
  weights: TensorInfo[];
  attrs: AdamStepAttrs;
}

function kernelInputs(inputs: Record<string, TensorInfo>, attrs?: NamedAttrMap): KernelInputs {
  if (!attrs) throw new Error("AdamStep kernel: missing attrs");
  const a = attrs as unknown as AdamStepAttrs;
  const state = inputs.state;
  if (!state) throw new Error("AdamStep kernel: missing input state");
  const grads: TensorInfo[] = [];
  const weights: TensorInfo[] = [];
  for (let i = 0; i < a.decay.length; i++) {
    const g = inputs[`g${i}`], w = inputs[`w${i}`];
    if (!g || !w) throw new Error(`AdamStep kernel: missing input g${i} or w${i}`);
    grads.push(g);
    weights.push(w);
  }
  return { state, grads, weights, attrs: a };
}

type RefCounted = { incRef(dataId: unknown): void };

registerKernel({
  kernelName: ADAM_STEP,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const k = kernelInputs(inputs as Record<string, TensorInfo>, attrs);
    const webgpu = backend as WebGPUBackend;
    const weights = runAdamStep(webgpu, k.state, k.grads, k.weights, k.attrs);
    (webgpu as unknown as RefCounted).incRef(k.state.dataId);
    return [{ dataId: k.state.dataId, shape: k.state.shape, dtype: "float32" }, ...weights];
  },
});

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

registerKernel({
  kernelName: ADAM_STEP,
  backendName: "cpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const k = kernelInputs(inputs as Record<string, TensorInfo>, attrs);
    const cpu = backend as unknown as CpuBackend;
    const weights = k.weights.map((w) => cpuArray(cpu, w).slice());
    adamStepRef(cpuArray(cpu, k.state), k.grads.map((g) => cpuArray(cpu, g)), weights, k.attrs);
    cpu.incRef(k.state.dataId);
    return [
      { dataId: k.state.dataId, shape: k.state.shape, dtype: "float32" },
      ...weights.map((w, i) => cpu.makeTensorInfo(k.weights[i].shape, "float32", w)),
    ];
  },
});
