// Shared plumbing for our WebGPU programs: running one (optionally into a poisoned output, for
// tests) and loading WGSL sources from `kernels/`.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";

/** One entry of `programDefinedUniform`, in the order of the program's `uniforms` string. */
export type Uniform = { type: "float32" | "int32" | "uint32"; data: number[] };

let poisonOutputs = false;

/**
 * Tests turn this on so that every output buffer starts as NaN: an element the kernel fails to
 * write then shows up as a mismatch instead of a stale value from the buffer pool.
 */
export function setPoisonOutputs(on: boolean): void {
  poisonOutputs = on;
}

/** Runs `program` on the webgpu backend; returns its single output. */
export function runProgram(
  backend: WebGPUBackend,
  program: WebGPUProgram,
  inputs: TensorInfo[],
  uniforms: Uniform[] = [],
): TensorInfo {
  if (!poisonOutputs) return backend.runWebGPUProgram(program, inputs, "float32", uniforms);
  const size = program.outputShape.reduce((a, b) => a * b, 1);
  const output = backend.makeTensorInfo(
    program.outputShape,
    "float32",
    new Float32Array(size).fill(NaN),
  );
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
