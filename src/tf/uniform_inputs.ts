// Program inputs read through a uniform buffer (var<uniform>) instead of storage, for tfjs-webgpu
// programs. On lavapipe a uniform load is a branchless emulated gather while a storage load is a
// per-lane loop with a bounds-check branch (src/ops/conv/gemm_wgsl.ts's "CPU's rules"): the row
// window kernels with their filter in a uniform buffer ran 1.1-1.7x faster per view on Mesa 22.3
// and 25.0 (BENCHMARKS.md, "Uniform-buffer loads").
//
// tfjs declares every program input `var<storage, read>` and binds the tensor's own buffer, which
// has no UNIFORM usage. So a program marks an input with a line `// uniform-input NAME` in its
// WGSL (uniformInputMarker); then, with installUniformInputs:
//   - its module's declaration `var<storage, read> NAME: array<vec4<f32>>;` becomes
//     `var<uniform> NAME: array<vec4<f32>, 4096>;` (a uniform array needs a fixed size and a
//     16-byte stride; 4096 vec4 = 64 KiB, WebGPU's default maxUniformBufferBindingSize, which
//     Deno reports on lavapipe: one size, one pipeline per program);
//   - each bind group of such a pipeline gets, in that binding, a 64 KiB UNIFORM buffer into
//     which the input is copied first, in tfjs's own command encoder (so after whatever wrote
//     the input, before the dispatch that reads it; WebGPU orders the copy after the previous
//     dispatch's reads of the same buffer, so one buffer serves every dispatch).
// The caller guarantees the input is at most UNIFORM_INPUT_BYTES (conv/gemm.ts's
// filterUniformApplies); a larger one throws here.

/** Bytes of the uniform binding: WebGPU's default maxUniformBufferBindingSize. */
export const UNIFORM_INPUT_BYTES = 65536;

/** The WGSL line that marks input `name` of a program as read through a uniform buffer. */
export function uniformInputMarker(name: string): string {
  return `// uniform-input ${name}`;
}

interface TfjsEncoder {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
}

export interface UniformInputStats {
  /** Inputs copied into the uniform buffer (one per dispatch of a marked program). */
  copies: number;
}

const installed = new WeakMap<object, UniformInputStats>();

/** Rewrites `code`'s marked inputs to uniform arrays; returns their binding numbers. */
export function rewriteUniformInputs(code: string): { code: string; bindings: number[] } {
  const bindings: number[] = [];
  for (const [, name] of code.matchAll(/^\s*\/\/ uniform-input (\w+)$/gm)) {
    const decl = new RegExp(
      `@binding\\((\\d+)\\) var<storage, read> ${name}: array<vec4<f32>>;`,
    );
    const m = decl.exec(code);
    if (!m) throw new Error(`uniform input ${name}: no vec4 storage binding of that name`);
    bindings.push(Number(m[1]));
    code = code.replace(
      decl,
      `@binding(${m[1]}) var<uniform> ${name}: array<vec4<f32>, ${UNIFORM_INPUT_BYTES / 16}>;`,
    );
  }
  return { code, bindings };
}

/**
 * Installs the rewrite and the copy on a webgpu backend (once; returns its counters). Must run
 * after src/tf/dispatch_cache.ts's installDispatchCache, whose bind group cache then sees the
 * uniform buffer, not the input's.
 */
export function installUniformInputs(backend: object): UniformInputStats {
  const existing = installed.get(backend);
  if (existing) return existing;
  const stats: UniformInputStats = { copies: 0 };
  installed.set(backend, stats);
  const tfjs = backend as TfjsEncoder;
  const device = tfjs.device;

  const marked = new WeakMap<GPUShaderModule, number[]>();
  const createModule = device.createShaderModule.bind(device);
  device.createShaderModule = (d) => {
    if (!d.code.includes("// uniform-input ")) return createModule(d);
    const { code, bindings } = rewriteUniformInputs(d.code);
    const module = createModule({ ...d, code });
    marked.set(module, bindings);
    return module;
  };

  const layouts = new WeakMap<GPUBindGroupLayout, number[]>();
  const mark = (pipeline: GPUComputePipeline, bindings: number[] | undefined) => {
    if (!bindings) return pipeline;
    // Deno returns a new layout object per call: keep the one the bind hook will recognise.
    const layout = pipeline.getBindGroupLayout(0);
    layouts.set(layout, bindings);
    const get = pipeline.getBindGroupLayout.bind(pipeline);
    pipeline.getBindGroupLayout = (i: number) => (i === 0 ? layout : get(i));
    return pipeline;
  };
  const createPipeline = device.createComputePipeline.bind(device);
  device.createComputePipeline = (d) => mark(createPipeline(d), marked.get(d.compute.module));
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipelineAsync = async (d) =>
    mark(await createPipelineAsync(d), marked.get(d.compute.module));

  let uniform: GPUBuffer | null = null;
  const createBindGroup = device.createBindGroup.bind(device);
  device.createBindGroup = (d) => {
    const bindings = layouts.get(d.layout);
    if (!bindings) return createBindGroup(d);
    uniform ??= device.createBuffer({
      size: UNIFORM_INPUT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "uniform inputs",
    });
    if (bindings.length !== 1) throw new Error("one uniform input per program");
    const entries = [...(d.entries as GPUBindGroupEntry[])];
    const at = entries.findIndex((e) => e.binding === bindings[0]);
    const source = entries[at].resource as GPUBufferBinding;
    const bytes = source.size ?? source.buffer.size - (source.offset ?? 0);
    if (bytes > UNIFORM_INPUT_BYTES) {
      throw new Error(`uniform input of ${bytes} bytes: at most ${UNIFORM_INPUT_BYTES}`);
    }
    tfjs.ensureCommandEncoderReady();
    tfjs.endComputePassEncoder();
    tfjs.commandEncoder!.copyBufferToBuffer(source.buffer, source.offset ?? 0, uniform, 0, bytes);
    stats.copies++;
    entries[at] = { binding: bindings[0], resource: { buffer: uniform } };
    return createBindGroup({ ...d, entries });
  };
  return stats;
}
