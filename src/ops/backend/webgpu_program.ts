// Shared plumbing for our WebGPU programs: grid helpers, the flat one-invocation-per-element
// program, running one (optionally into a poisoned output, for tests) and loading WGSL sources
// from `kernels/`.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { wgsl } from "./wgsl.ts";

/** One entry of `programDefinedUniform`, in the order of the program's `uniforms` string. */
export type Uniform = { type: "float32" | "int32" | "uint32"; data: number[] };

/** Which output dims tfjs folds into each grid axis of a program. */
export type DispatchLayout = { x: number[]; y?: number[]; z?: number[] };
/** Workgroup counts of a dispatch along x, y, z. */
export type Dispatch = [number, number, number];

/** WebGPU's limit on workgroups along one grid axis. */
export const MAX_GROUPS_PER_DIM = 65535;
/** Splits `groups` workgroups over two grid axes (the first <= 65535; at least one group). */
export function splitGroups(groups: number): [number, number] {
  if (groups <= MAX_GROUPS_PER_DIM) return [Math.max(1, groups), 1];
  const second = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / second), second];
}

/**
 * A program over a flat grid: one invocation per element of a 1-D output, workgroup 64, the
 * WGSL body from kernels/<kernel>.wgsl. Each user subclasses it under its own name, which is
 * what the dispatch counter (bench/dispatches.ts) and tfjs's profiler report.
 */
export class FlatKernelProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout = { x: [0] };
  dispatch: Dispatch;
  workgroupSize: [number, number, number] = [64, 1, 1];
  variableNames: string[];
  uniforms: string;
  private readonly kernel: string;

  constructor(
    kernel: string,
    p: { shaderKey?: string; variableNames: string[]; uniforms: string; outputSize: number },
  ) {
    this.kernel = kernel;
    this.shaderKey = p.shaderKey ?? kernel.replace(/^.*\//, "").replace(/\.wgsl$/, "");
    this.variableNames = p.variableNames;
    this.uniforms = p.uniforms;
    this.outputShape = [p.outputSize];
    const [gx, gy] = splitGroups(Math.ceil(p.outputSize / 64));
    this.dispatch = [gx, gy, 1];
  }

  getUserCode(): string {
    return wgsl(this.kernel);
  }
}

/** A generated program: its key, bindings, grid and the WGSL it builds when asked. */
export interface GeneratedProgramSpec {
  shaderKey: string;
  /** The WGSL, built on demand: tfjs asks only when no pipeline has this key yet. */
  code: () => string;
  variableNames: string[];
  variableComponents: number[];
  outputComponent: number;
  /** Output size in floats. */
  outputSize: number;
  dispatch: Dispatch;
  workgroupSize: number;
  /** The uniform struct's fields, `name : type,` each. */
  uniforms: string;
}

/**
 * A program whose WGSL is generated (the conv GEMMs, the Winograd passes) over a grid whose
 * main() takes no index. Each user subclasses it under its own name, which is what tfjs's
 * profiles and GPU timestamps report. Building the WGSL on demand matters: in every constructor
 * it cost ~2 ms of main-thread CPU per enhanced step (scratch/cpu-prof of 150 steps at batch 8:
 * gemm_wgsl.ts's template functions were 13% of the step's JavaScript), for a string tfjs reads
 * once per key.
 */
export abstract class GeneratedProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [0] }; // two axes: main() takes no index
  dispatch: Dispatch;
  workgroupSize: [number, number, number];
  variableNames: string[];
  variableComponents: number[];
  outputComponent: number;
  uniforms: string;
  private readonly code: () => string;

  constructor(s: GeneratedProgramSpec) {
    this.outputShape = [s.outputSize];
    this.shaderKey = s.shaderKey;
    this.code = s.code;
    this.variableNames = s.variableNames;
    this.variableComponents = s.variableComponents;
    this.outputComponent = s.outputComponent;
    this.dispatch = s.dispatch;
    this.workgroupSize = [s.workgroupSize, 1, 1];
    this.uniforms = s.uniforms;
  }

  getUserCode(): string {
    return this.code();
  }
}

let poisonOutputs = false;

/**
 * Tests turn this on so that every output buffer starts as NaN: an element the kernel fails to
 * write then shows up as a mismatch instead of a stale value from the buffer pool.
 */
export function setPoisonOutputs(on: boolean): void {
  poisonOutputs = on;
}

/** A fresh float32 output tensor: unallocated, or NaN-filled while outputs are poisoned. */
export function makeOutput(backend: WebGPUBackend, shape: number[]): TensorInfo {
  if (!poisonOutputs) return backend.makeTensorInfo(shape, "float32");
  const size = shape.reduce((a, b) => a * b, 1);
  return backend.makeTensorInfo(shape, "float32", new Float32Array(size).fill(NaN));
}

/** Runs `program` on the webgpu backend; returns its single output. */
export function runProgram(
  backend: WebGPUBackend,
  program: WebGPUProgram,
  inputs: TensorInfo[],
  uniforms: Uniform[] = [],
): TensorInfo {
  if (!poisonOutputs) return backend.runWebGPUProgram(program, inputs, "float32", uniforms);
  const output = makeOutput(backend, program.outputShape);
  return backend.runWebGPUProgram(program, inputs, "float32", uniforms, output);
}
