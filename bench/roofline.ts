// Roofline suite: the adapter's own ceilings, measured with our two kernels (a large buffer copy
// for GB/s, a tiled matmul for GFLOP/s). Every other benchmark figure is also reported as a
// percent of these, so numbers from llvmpipe and from a real GPU read the same way.

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { runProgram } from "../src/ops/backend/webgpu_program.ts";

/** The roofline kernels sit beside this module (the suite runs under Deno only). */
function readWgsl(name: string): string {
  return Deno.readTextFileSync(new URL(name, import.meta.url));
}
import { measure, type Stats, type TimingOptions } from "./timing.ts";
import type { CpuPeak } from "./cpu_peak.ts";

const COPY_WORKGROUP = 256;
/** Caps the copy dispatch; the kernel's grid-stride loop covers the rest of the buffer. */
const COPY_MAX_WORKGROUPS = 4096;

class RooflineCopyProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "roofline_copy";
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["x"];
  workgroupSize: [number, number, number] = [COPY_WORKGROUP, 1, 1];
  uniforms = "scale : f32, stride : i32,";
  size = true;
  outputComponent = 4;
  /** Invocations in the whole grid: the grid-stride loop's step. */
  readonly stride: number;

  constructor(elements: number) {
    if (elements % 4 !== 0) throw new Error(`roofline copy: ${elements} is not a multiple of 4`);
    this.outputShape = [elements];
    this.dispatchLayout = { x: [0] };
    const groups = Math.min(Math.ceil(elements / 4 / COPY_WORKGROUP), COPY_MAX_WORKGROUPS);
    this.dispatch = [groups, 1, 1];
    this.stride = groups * COPY_WORKGROUP;
  }

  getUserCode(): string {
    return readWgsl("roofline_copy.wgsl");
  }
}

const MATMUL_WORKGROUP = 64;

class RooflineMatMulProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "roofline_matmul";
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ["a", "b"];
  workgroupSize: [number, number, number] = [MATMUL_WORKGROUP, 1, 1];
  outputComponent = 4;
  variableComponents = [4, 4];

  constructor(m: number, n: number) {
    this.outputShape = [m, n];
    // One invocation per 8x8 block of C.
    this.dispatch = [Math.ceil((m / 8) * (n / 8) / MATMUL_WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    return readWgsl("roofline_matmul.wgsl");
  }
}

function webgpuBackend(): WebGPUBackend {
  if (tf.getBackend() !== "webgpu") {
    throw new Error(`the roofline suite needs the webgpu backend (active: ${tf.getBackend()})`);
  }
  return tf.backend() as unknown as WebGPUBackend;
}

/** y = x * scale through our copy kernel (the tensor-level wrapper used by benchmarks/tests). */
export function rooflineCopy(x: tf.Tensor1D, scale = 1): tf.Tensor1D {
  const backend = webgpuBackend();
  const program = new RooflineCopyProgram(x.size);
  const info = runProgram(backend, program, [x], [
    { type: "float32", data: [scale] },
    { type: "int32", data: [program.stride] },
  ]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
}

/** C = A * B through our tiled matmul kernel. */
export function rooflineMatMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const backend = webgpuBackend();
  if (a.shape[1] !== b.shape[0]) {
    throw new Error(`roofline matmul: inner sizes differ ([${a.shape}] x [${b.shape}])`);
  }
  const [m, k] = a.shape;
  const n = b.shape[1];
  if (m % 8 !== 0 || n % 8 !== 0 || k % 4 !== 0) {
    throw new Error(`roofline matmul: M and N must be multiples of 8, K of 4 (got ${m}x${k}x${n})`);
  }
  const program = new RooflineMatMulProgram(m, n);
  const info = runProgram(backend, program, [a, b]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/** Ceilings use the best (min) time of the repeats: a ceiling is what the adapter can reach. */
export interface RooflineResult {
  copy: { bytes: number; elements: number; stats: Stats; gbPerS: number };
  matmul: { m: number; n: number; k: number; flops: number; stats: Stats; gflopPerS: number };
  /** The host CPU's FMA peak (bench/cpu_peak.ts): a software adapter's real ceiling. */
  cpu?: CpuPeak;
}

export interface RooflineSizes {
  /** f32 elements copied (read once, written once). */
  copyElements: number;
  /** Matmul [m, k] x [k, n]. */
  matmul: { m: number; k: number; n: number };
}

/**
 * 64 MiB copied each way. The matmul has the GEMM shape of our conv layers (K = 3*3*64,
 * N = 64 channels, M = output pixels): B stays in cache, as the filter does for a conv, so it
 * measures arithmetic, not memory (1.2 GFLOP). Quick: 1 MiB and 256x64x32.
 */
export function rooflineSizes(quick: boolean): RooflineSizes {
  return quick
    ? { copyElements: 1 << 18, matmul: { m: 256, k: 64, n: 32 } }
    : { copyElements: 1 << 24, matmul: { m: 16384, k: 576, n: 64 } };
}

export async function runRoofline(
  sizes: RooflineSizes,
  timing: TimingOptions,
): Promise<RooflineResult> {
  const x = tf.randomUniform([sizes.copyElements], -1, 1, "float32", 1) as tf.Tensor1D;
  const copyStats = await measure(() => rooflineCopy(x), timing);
  x.dispose();
  const copyBytes = 2 * 4 * sizes.copyElements;

  const { m, k, n } = sizes.matmul;
  const a = tf.randomUniform([m, k], -1, 1, "float32", 2) as tf.Tensor2D;
  const b = tf.randomUniform([k, n], -1, 1, "float32", 3) as tf.Tensor2D;
  const mmStats = await measure(() => rooflineMatMul(a, b), timing);
  tf.dispose([a, b]);
  const flops = 2 * m * n * k;
  return {
    copy: {
      bytes: copyBytes,
      elements: sizes.copyElements,
      stats: copyStats,
      gbPerS: copyBytes / (copyStats.minMs * 1e6),
    },
    matmul: {
      m,
      n,
      k,
      flops,
      stats: mmStats,
      gflopPerS: flops / (mmStats.minMs * 1e6),
    },
  };
}
