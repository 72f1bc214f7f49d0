// WebGPU program of the fused Adam step (AdamStep, see adam_step.ts) and its kernel
// webgpu kernel (the cpu kernel is the reference, in adam_step_ref.ts).
//
// One pass per group of variables (src/ops/adam_step/adam_update.wgsl), a multi-output program
// (src/ops/backend/webgpu_multi_output.ts): each invocation reads g and w, updates m and v in place in
// the packed state and writes w' into a fresh buffer that the optimizer assigns to the
// variable. A variable takes 3 storage bindings (g, w, w') and the state 1, so a group holds
// floor((maxStorageBuffersPerShaderStage - 1) / 3) variables: 2 at WebGPU's default limit of 8
// (what tfjs's device gets), so enhanced's 16 variables take 8 dispatches.
// The weights are not written in place: tfjs treats tensor data as immutable (a read caches
// the values on the CPU, clones share buffers), and a new buffer from the pool costs nothing
// measurable. The state is ours alone; its CPU cache is dropped after each write.
// Every array is read and written once, so the step is bandwidth-bound and tiny next to the
// convolutions (0.47M parameters: ~11 MB of traffic for enhanced). Dispatches per enhanced step:
// tf.train.adam with the L2 gradient 242; a two-pass kernel (moments grouped in place, then one
// dispatch per variable's weights) 20, reading the fresh moments back from memory; this pass 8.
// Measured (bench/probes/step_parts_probe.ts, llvmpipe, loaded 2-core machine, batch 128, median
// of 9; two runs minutes apart): tf.train.adam 54.4 / 52.4 ms, two-pass 31.1 ms, this pass
// 21.1 ms (2.48x against tf.train.adam). Scalar loads; vec4 (fewer loads per element on
// llvmpipe) is untried.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type AdamStepAttrs, adamStepKernel, packedOffsets } from "./adam_step.ts";
import { adamScalars } from "./adam_step_ref.ts";
import { type Uniform } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";

/** One slot of a group: a variable's index, element count and whether it decays. */
interface Slot {
  variable: number;
  size: number;
  decay: boolean;
}

/** Storage bindings one variable takes in a pass: g, w and w'. */
export const BINDINGS_PER_VARIABLE = 3;
/** Storage bindings every pass takes besides its variables': the state and the step scalars. */
export const SHARED_BINDINGS = 2;

/**
 * Splits the variables, in order, into groups that fit `maxStorageBuffers` bindings: the state
 * and the step scalars plus BINDINGS_PER_VARIABLE per variable.
 */
export function adamGroups(
  sizes: number[],
  decay: boolean[],
  maxStorageBuffers: number,
): Slot[][] {
  const perGroup = Math.floor((maxStorageBuffers - SHARED_BINDINGS) / BINDINGS_PER_VARIABLE);
  if (perGroup < 1) throw new Error(`AdamStep: ${maxStorageBuffers} storage buffers are too few`);
  const groups: Slot[][] = [];
  sizes.forEach((size, variable) => {
    if (variable % perGroup === 0) groups.push([]);
    groups[groups.length - 1].push({ variable, size, decay: decay[variable] });
  });
  return groups;
}

/** One group's pass: src/ops/adam_step/adam_update.wgsl plus a generated main(). */
export class AdamUpdateProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames: string[];
  override readonly uniforms: string;
  private slots: Slot[];

  constructor(slots: Slot[]) {
    super();
    this.slots = slots;
    this.outputNames = ["state", ...slots.map((_, k) => `wNew${k}`)];
    this.variableNames = ["stepScalars", ...slots.flatMap((_, k) => [`g${k}`, `w${k}`])];
    this.uniforms = "beta1 : f32, beta2 : f32, oneMinusBeta1 : f32, oneMinusBeta2 : f32, " +
      "l2 : f32, epsilon : f32, " +
      "total : i32, " + slots.map((_, k) => `end${k} : i32, off${k} : i32, `).join("");
    this.shaderKey = `adamUpdate_${slots.map((s) => (s.decay ? "d" : "p")).join("")}`;
  }

  getUserCode(): string {
    const branches = this.slots.map((s, k) => {
      const start = k === 0 ? "0" : `uniforms.end${k - 1}`;
      const g = s.decay ? `decayed(g${k}[j], w)` : `g${k}[j]`;
      return `  if (index < uniforms.end${k}) {
    let j = index - ${start};
    let w = w${k}[j];
    wNew${k}[j] = adamUpdate(uniforms.off${k} + j, ${g}, w);
    return;
  }`;
    });
    return wgsl("adam_step/adam_update.wgsl") +
      `\nfn main(index : i32) {\n${branches.join("\n")}\n}\n`;
  }
}

const f32 = (x: number): Uniform => ({ type: "float32", data: [x] });
const i32 = (x: number): Uniform => ({ type: "int32", data: [x] });

/** Storage buffers one program may bind on this device. */
export function maxStorageBuffers(backend: WebGPUBackend): number {
  return (backend.device.limits as { maxStorageBuffersPerShaderStage?: number })
    .maxStorageBuffersPerShaderStage ?? 8;
}

type TensorMap = { tensorMap: { get(id: unknown): { values: unknown } } };

/** Runs the whole step on the GPU: the state in place; returns the new weights. */
export function runAdamStep(
  backend: WebGPUBackend,
  state: TensorInfo,
  stepScalars: TensorInfo,
  grads: TensorInfo[],
  weights: TensorInfo[],
  attrs: AdamStepAttrs,
): TensorInfo[] {
  const sizes = weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const { offsets, total } = packedOffsets(sizes);
  const s = adamScalars(attrs);
  const next: TensorInfo[] = [];
  for (const group of adamGroups(sizes, attrs.decay, maxStorageBuffers(backend))) {
    const uniforms: Uniform[] = [
      f32(s.beta1),
      f32(s.beta2),
      f32(s.oneMinusBeta1),
      f32(s.oneMinusBeta2),
      f32(s.l2),
      f32(s.epsilon),
      i32(total),
    ];
    let end = 0;
    for (const slot of group) {
      end += slot.size;
      uniforms.push(i32(end), i32(offsets[slot.variable]));
    }
    const [, ...fresh] = runMultiOutputProgram(
      backend,
      new AdamUpdateProgram(group),
      [state, ...group.map((slot) => weights[slot.variable].shape)],
      [stepScalars, ...group.flatMap((slot) => [grads[slot.variable], weights[slot.variable]])],
      end,
      uniforms,
    );
    next.push(...fresh);
  }
  // A read of the state (tests, getWeights on the cpu) may have cached stale values.
  (backend as unknown as TensorMap).tensorMap.get(state.dataId).values = null;
  return next;
}

/** The webgpu kernel: the passes above. */
export const adamStepWebgpu = adamStepKernel(
  "webgpu",
  (backend, k) =>
    runAdamStep(backend as WebGPUBackend, k.state, k.stepScalars, k.grads, k.weights, k.attrs),
);
