// The WebGPU kernel of dropout (dropout.ts): one flat pass, the mask of src/ops/wgsl/dropout_mask.wgsl.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { FlatKernelProgram, runProgram, type Uniform } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { type DropoutAttrs, dropoutConstants, SEEDED_DROPOUT } from "./dropout.ts";

class SeededDropoutProgram extends FlatKernelProgram {
  constructor(size: number) {
    super("dropout/dropout.wgsl", {
      variableNames: ["x", "dropoutKey"],
      uniforms: "threshold : u32, scale : f32, n : i32,",
      outputSize: size,
    });
  }

  override getUserCode(): string {
    return wgsl("wgsl/dropout_mask.wgsl") + "\n" + super.getUserCode();
  }
}

/**
 * The mask's uniforms (dropout_mask.wgsl: threshold, scale), for kernels that apply it; the key
 * comes from their dropoutKey input.
 */
export function dropoutUniforms(a: DropoutAttrs): Uniform[] {
  const { threshold, scale } = dropoutConstants(a);
  return [
    { type: "uint32", data: [threshold] },
    { type: "float32", data: [scale] },
  ];
}

export const seededDropoutWebgpu: KernelConfig = {
  kernelName: SEEDED_DROPOUT,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, dropoutKey } = inputs as { x: TensorInfo; dropoutKey: TensorInfo };
    const a = attrs as unknown as DropoutAttrs;
    const size = x.shape.reduce((p, d) => p * d, 1);
    const flat = { dataId: x.dataId, shape: [size], dtype: x.dtype };
    const program = new SeededDropoutProgram(size);
    const y = runProgram(backend as WebGPUBackend, program, [flat, dropoutKey], [
      ...dropoutUniforms(a),
      { type: "int32", data: [size] },
    ]);
    return { dataId: y.dataId, shape: x.shape, dtype: "float32" };
  },
};
