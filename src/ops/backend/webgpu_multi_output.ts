// Programs that write several tensors in one dispatch. A tfjs program writes one buffer
// (`result`): the header tfjs generates binds every input read-only, and WebGPU forbids binding
// one buffer writable and read-only in the same dispatch, so N outputs cost N dispatches (tens
// of µs of host time each on a GPU, where a small CNN's step is ~1 ms of arithmetic). Here the
// program brings its whole WGSL module instead (outputs read_write, then inputs read-only, then
// the uniform block) and is encoded by the backend's own recordAndSubmit: same command encoder,
// submit batching, buffer ownership and timers as tfjs's programs, and bench/dispatches.ts
// counts it under the program's class name.
//
// recordAndSubmit binds [output, ...inputs, uniforms] and fills the uniforms with NAN, INFINITY,
// then the shape and strides of each bound tensor (inputs in order, the output last), then the
// size and the program's own values (tfjs 4.22 makeUniforms). We pass outputs[0] as its output
// and outputs[1..] ahead of the real inputs, and the struct below mirrors that packing: tfjs
// aligns a field of 1, 2, 3-4 values to 4, 8, 16 bytes, WGSL's natural layout for i32, vec2,
// vec3/vec4 (ranks above 4 are refused). Inputs bind as array<f32>, or array<i32> for int32
// tensors. Every output is a fresh buffer (tfjs tensors are
// immutable: clones share buffers), NaN-filled while tests poison outputs.
// A program with a `grid` (workgroup size and counts of its own) gets `fn main()` with the
// module-scope `localId` and `workgroupId` of tfjs's own headers, for kernels that cooperate in
// workgroup memory (conv_bn_relu_bwd.ts's dz pass, conv_bn_relu_fwd.ts's apply pass).

import { type TensorInfo, util } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type Dispatch, makeOutput, splitGroups, type Uniform } from "./webgpu_program.ts";

/** An explicit grid: workgroup size and the workgroup counts of one dispatch. */
export interface ProgramGrid {
  workgroupSize: [number, number, number];
  dispatch: Dispatch;
}

const WORKGROUP = 64;

/**
 * A flat multi-output program: one invocation per index in [0, size), workgroup 64. The user
 * code defines `fn main(index : i32)` (called only for index < uniforms.size) over the arrays
 * named by `outputNames` (writable, in output order) and `variableNames` (inputs), and may read
 * `uniforms.<name>Shape` for each of them and the fields declared in `uniforms`. Subclass it
 * under the op's name: that name is what the dispatch counter and tfjs's profiler report.
 */
export abstract class MultiOutputProgram {
  abstract readonly shaderKey: string;
  abstract readonly outputNames: string[];
  abstract readonly variableNames: string[];
  /** Extra WGSL uniform fields, e.g. "momentum : f32,", in the order of the values passed. */
  readonly uniforms: string = "";
  /**
   * true: main(index) runs for every invocation of the ceil(size / 64) workgroups, not only
   * index < size, so that it may call workgroupBarrier (uniform control flow); it then checks
   * its own bounds.
   */
  readonly everyInvocation: boolean = false;
  /**
   * Set: the user code defines `fn main()` instead, run by every invocation of this grid, and
   * reads `localId` / `workgroupId` (vec3<u32>); `size` is then only the `uniforms.size` value.
   */
  readonly grid?: ProgramGrid;
  /**
   * true: float32 outputs and inputs bind as array<vec4<f32>> (index in units of 4 floats; every
   * such tensor's size must be a multiple of 4). On llvmpipe a vec4 load costs about what a
   * scalar one does, so elementwise passes load 4x less. Uniform shapes stay element shapes.
   */
  readonly vec4: boolean = false;
  abstract getUserCode(): string;

  // Read by recordAndSubmit.
  readonly size = true;
  outputShape: number[] = [0];
  dispatch: Dispatch = [1, 1, 1];
  pipeline: GPUComputePipeline | null = null;
}

function fieldType(length: number): string {
  if (length === 1) return "i32";
  if (length <= 4) return `vec${length}<i32>`;
  throw new Error(`multi-output program: tensors of rank <= 4 only, got rank ${length}`);
}

/** The uniform struct recordAndSubmit fills for tensors bound in `order` (name, rank). */
function uniformStruct(order: [string, number][], extra: string): string {
  const fields = order.map(([name, rank]) =>
    `${name}Shape : ${fieldType(Math.max(rank, 1))}, ` +
    `${name}ShapeStrides : ${fieldType(Math.max(rank - 1, 1))},`
  );
  return `struct Uniforms {\n  NAN : f32, INFINITY : f32,\n  ${fields.join("\n  ")}\n` +
    `  size : i32, ${extra}\n};`;
}

/** The dtype of the values in `t`'s buffer (tfjs's own programs declare bindings by it). */
function storedDtype(backend: WebGPUBackend, t: TensorInfo): TensorInfo["dtype"] {
  return backend.tensorMap.get(t.dataId)?.dtype ?? t.dtype;
}

/** WGSL element type of an input: i32 for int32 tensors (e.g. tf.oneHot labels), else f32. */
const elementType = (t: TensorInfo) => (t.dtype === "int32" ? "i32" : "f32");

/** The compute entry point: a flat index for main(index), or the grid's builtins for main(). */
function entryPoint(p: MultiOutputProgram): string {
  if (p.grid) {
    const [x, y, z] = p.grid.workgroupSize;
    return `var<private> localId : vec3<u32>;
var<private> workgroupId : vec3<u32>;
@compute @workgroup_size(${x}, ${y}, ${z})
fn _start(@builtin(local_invocation_id) lid : vec3<u32>,
          @builtin(workgroup_id) wid : vec3<u32>) {
  localId = lid;
  workgroupId = wid;
  main();
}`;
  }
  return `@compute @workgroup_size(${WORKGROUP}, 1, 1)
fn _start(@builtin(global_invocation_id) gid : vec3<u32>,
          @builtin(num_workgroups) groups : vec3<u32>) {
  let index = i32(gid.y * groups.x * ${WORKGROUP}u + gid.x);
${p.everyInvocation ? "  main(index);" : "  if (index < uniforms.size) {\n    main(index);\n  }"}
}`;
}

/** WGSL array element of a binding: i32, or f32 / vec4<f32> per the program's `vec4`. */
const arrayElement = (p: MultiOutputProgram, t: TensorInfo) =>
  elementType(t) === "i32" ? "i32" : p.vec4 ? "vec4<f32>" : "f32";

function shaderSource(p: MultiOutputProgram, outputs: TensorInfo[], inputs: TensorInfo[]) {
  const outs = p.outputNames, ins = p.variableNames;
  // recordAndSubmit's order: outputs[1..] and the inputs (bindings 1..), then outputs[0].
  const order: [string, number][] = [
    ...outs.slice(1).map((n, i): [string, number] => [n, outputs[i + 1].shape.length]),
    ...ins.map((n, i): [string, number] => [n, inputs[i].shape.length]),
    [outs[0], outputs[0].shape.length],
  ];
  const bindings = [
    ...outs.map((n, i) =>
      `@group(0) @binding(${i}) var<storage, read_write> ${n} : array<${
        arrayElement(p, outputs[i])
      }>;`
    ),
    ...ins.map((n, i) =>
      `@group(0) @binding(${outs.length + i}) var<storage, read> ${n} : array<${
        arrayElement(p, inputs[i])
      }>;`
    ),
    `@group(0) @binding(${outs.length + ins.length}) var<uniform> uniforms : Uniforms;`,
  ];
  return [
    uniformStruct(order, p.uniforms),
    ...bindings,
    p.getUserCode(),
    entryPoint(p),
  ].join("\n");
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

type Recorder = {
  uploadToGPU(dataId: unknown): void;
  recordAndSubmit(
    program: MultiOutputProgram,
    output: TensorInfo,
    inputs: TensorInfo[],
    uniforms: Uniform[],
  ): void;
};

/**
 * Runs `program` over `size` indices (or over its own grid, with uniforms.size = `size`). Each
 * entry of `outputs` is a shape (a fresh float32 output) or a tensor the program updates in place
 * (it is bound read_write: the program may read it; its owner must drop any CPU copy of the
 * values). Returns the outputs in order; the fresh ones belong to the caller, as with any kernel
 * output.
 */
export function runMultiOutputProgram(
  backend: WebGPUBackend,
  program: MultiOutputProgram,
  outputSpecs: (number[] | TensorInfo)[],
  inputs: TensorInfo[],
  size: number,
  uniforms: Uniform[] = [],
): TensorInfo[] {
  if (outputSpecs.length !== program.outputNames.length || outputSpecs.length === 0) {
    throw new Error(`${program.constructor.name}: ${outputSpecs.length} outputs`);
  }
  if (inputs.length !== program.variableNames.length) {
    throw new Error(`${program.constructor.name}: ${inputs.length} inputs`);
  }
  const outputs = outputSpecs.map((s) => Array.isArray(s) ? makeOutput(backend, s) : s);
  // tfjs-webgpu's Cast int32 -> float32 relabels the tensor and keeps its int32 buffer
  // (hasEncodingLoss is false), so the element type comes from what the buffer holds: reading
  // tf.cast(tf.oneHot(...), "float32") as f32 gave a loss of 4.2e-45 (the bits of int 3).
  inputs = inputs.map((t) => ({ ...t, dtype: storedDtype(backend, t) }));
  if (program.vec4) {
    const odd = [...outputs, ...inputs].find((t) =>
      t.dtype !== "int32" && util.sizeFromShape(t.shape) % 4 !== 0
    );
    if (odd) {
      throw new Error(
        `${program.constructor.name}: vec4 bindings need sizes % 4 == 0, got [${odd.shape}]`,
      );
    }
  }
  if (size === 0 || program.grid?.dispatch.includes(0)) return outputs;
  const recorder = backend as unknown as Recorder;
  for (const t of [...outputs, ...inputs]) recorder.uploadToGPU(t.dataId);
  const key =
    `${program.shaderKey}|${program.vec4 ? "v4" : "v1"}|${
      [...outputs, ...inputs].map((t) => t.shape.length)
    }|` +
    `${inputs.map(elementType).join()}|${program.grid?.workgroupSize.join("x") ?? "flat"}`;
  let cache = pipelines.get(backend.device);
  if (!cache) pipelines.set(backend.device, cache = new Map());
  let pipeline = cache.get(key);
  if (!pipeline) {
    const label = program.constructor.name;
    const code = shaderSource(program, outputs, inputs);
    const module = backend.device.createShaderModule({ code, label });
    pipeline = backend.device.createComputePipeline({
      compute: { module, entryPoint: "_start" },
      layout: "auto",
      label,
    });
    cache.set(key, pipeline);
  }
  program.pipeline = pipeline;
  program.outputShape = [size];
  if (program.grid) {
    program.dispatch = program.grid.dispatch;
  } else {
    const [gx, gy] = splitGroups(Math.ceil(size / WORKGROUP));
    program.dispatch = [gx, gy, 1];
  }
  recorder.recordAndSubmit(program, outputs[0], [...outputs.slice(1), ...inputs], uniforms);
  return outputs;
}
