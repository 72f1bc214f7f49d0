// Roofline suite: the adapter's own ceilings, measured with our two kernels (a large buffer copy
// for GB/s, a tiled matmul for GFLOP/s). Every other benchmark figure is also reported as a
// percent of these, so numbers from llvmpipe and from a real GPU read the same way.

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { kernelSource, runProgram } from "../src/ops/webgpu_program.ts";
import { measure, type Stats, type TimingOptions } from "./timing.ts";

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
    return kernelSource("roofline_copy");
  }
}

/** Output tile per workgroup; the kernel has no bounds checks, so sizes are multiples of it. */
const MATMUL_TILE = 32;

class RooflineMatMulProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "roofline_matmul";
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  variableNames = ["a", "b"];
  workgroupSize: [number, number, number] = [8, 8, 1];
  outputComponent = 4;
  variableComponents = [4, 4];

  constructor(m: number, n: number) {
    this.outputShape = [m, n];
    this.dispatch = [Math.ceil(n / MATMUL_TILE), Math.ceil(m / MATMUL_TILE), 1];
  }

  getUserCode(): string {
    return kernelSource("roofline_matmul");
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
  if ([...a.shape, b.shape[1]].some((d) => d % MATMUL_TILE !== 0)) {
    throw new Error(`roofline matmul: sizes must be multiples of ${MATMUL_TILE}`);
  }
  const program = new RooflineMatMulProgram(a.shape[0], b.shape[1]);
  const info = runProgram(backend, program, [a, b]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/** Ceilings use the best (min) time of the repeats: a ceiling is what the adapter can reach. */
export interface RooflineResult {
  copy: { bytes: number; elements: number; stats: Stats; gbPerS: number };
  matmul: { m: number; n: number; k: number; flops: number; stats: Stats; gflopPerS: number };
}

export interface RooflineSizes {
  /** f32 elements copied (read once, written once). */
  copyElements: number;
  /** Square matmul size. */
  matmulSize: number;
}

/** 64 MiB copied each way; a 1024^3 matmul (2.1 GFLOP). Quick: 1 MiB and 128^3. */
export function rooflineSizes(quick: boolean): RooflineSizes {
  return quick
    ? { copyElements: 1 << 18, matmulSize: 128 }
    : { copyElements: 1 << 24, matmulSize: 1024 };
}

export async function runRoofline(
  sizes: RooflineSizes,
  timing: TimingOptions,
): Promise<RooflineResult> {
  const x = tf.randomUniform([sizes.copyElements], -1, 1, "float32", 1) as tf.Tensor1D;
  const copyStats = await measure(() => rooflineCopy(x), timing);
  x.dispose();
  const copyBytes = 2 * 4 * sizes.copyElements;

  const s = sizes.matmulSize;
  const a = tf.randomUniform([s, s], -1, 1, "float32", 2) as tf.Tensor2D;
  const b = tf.randomUniform([s, s], -1, 1, "float32", 3) as tf.Tensor2D;
  const mmStats = await measure(() => rooflineMatMul(a, b), timing);
  tf.dispose([a, b]);
  const flops = 2 * s * s * s;
  return {
    copy: {
      bytes: copyBytes,
      elements: sizes.copyElements,
      stats: copyStats,
      gbPerS: copyBytes / (copyStats.minMs * 1e6),
    },
    matmul: {
      m: s,
      n: s,
      k: s,
      flops,
      stats: mmStats,
      gflopPerS: flops / (mmStats.minMs * 1e6),
    },
  };
}
