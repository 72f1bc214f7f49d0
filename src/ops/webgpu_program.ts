// Shared plumbing for our WebGPU programs: grid helpers, the flat one-invocation-per-element
// program, running one (optionally into a poisoned output, for tests) and loading WGSL sources
// from `kernels/`.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";

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
    this.shaderKey = p.shaderKey ?? kernel;
    this.variableNames = p.variableNames;
    this.uniforms = p.uniforms;
    this.outputShape = [p.outputSize];
    const [gx, gy] = splitGroups(Math.ceil(p.outputSize / 64));
    this.dispatch = [gx, gy, 1];
  }

  getUserCode(): string {
    return kernelSource(this.kernel);
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

const sources = new Map<string, string>();

/** Where the browser bundle (src/serve/bundle.ts) puts the kernels/ sources: name -> WGSL. */
export const EMBEDDED_WGSL_GLOBAL = "FMNIST_EMBEDDED_WGSL";

/**
 * The WGSL body of `kernels/<name>.wgsl`. Read once and cached. `deno compile` embeds the folder
 * (`--include kernels`), so this works from the single binary too; in the browser the bundle
 * carries the sources (there is no file system to read).
 */
export function kernelSource(name: string): string {
  let src = sources.get(name);
  if (src === undefined) {
    const embedded = (globalThis as Record<string, unknown>)[EMBEDDED_WGSL_GLOBAL] as
      | Record<string, string>
      | undefined;
    if (embedded) {
      src = embedded[name];
      if (src === undefined) throw new Error(`kernel ${name}.wgsl is not in the bundle`);
    } else {
      src = Deno.readTextFileSync(new URL(`../../kernels/${name}.wgsl`, import.meta.url));
    }
    sources.set(name, src);
  }
  return src;
}
