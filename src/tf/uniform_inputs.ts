// Program inputs read through uniform buffers (var<uniform>) instead of storage, for tfjs-webgpu
// programs. On lavapipe a uniform load is a branchless emulated gather while a storage load is a
// per-lane loop with a bounds-check branch (src/ops/conv/gemm_wgsl.ts's "CPU's rules"): the row
// window kernels with their filter in a uniform buffer ran 1.1-1.7x faster per view on Mesa 22.3
// and 25.0 (BENCHMARKS.md, "Uniform-buffer loads").
//
// tfjs declares every program input `var<storage, read>` and binds the tensor's own buffer, which
// has no UNIFORM usage. So a program marks an input with a line `// uniform-input NAME PARTS` in
// its WGSL (uniformInputMarker); then, with installUniformInputs:
//   - its module's declaration `var<storage, read> NAME: array<vec4<f32>>;` becomes
//     `var<uniform> NAME: array<vec4<f32>, 4096>;` (a uniform array needs a fixed size and a
//     16-byte stride; 4096 vec4 = 64 KiB, WebGPU's default maxUniformBufferBindingSize, which
//     Deno reports on lavapipe: one size, one pipeline per program), and with PARTS > 1 the
//     declarations of NAME_1 .. NAME_{PARTS-1} follow at the next free binding numbers: the
//     input split into PARTS equal consecutive parts, NAME holding the first;
//   - each bind group of such a pipeline gets, in those bindings, 64 KiB UNIFORM buffers into
//     which the parts are copied first, in tfjs's own command encoder (so after whatever wrote
//     the input, before the dispatch that reads it; WebGPU orders a copy after the previous
//     dispatch's reads of the same buffer, so one set of buffers serves every dispatch).
// The caller guarantees each part is at most UNIFORM_INPUT_BYTES (conv/gemm.ts's
// filterUniformParts); a larger one throws here.
//
// The same hooks read an input through a texture (`// texture-input NAME`, textureInputMarker):
// `var<storage, read> NAME: array<vec4<f32>>;` becomes `var NAME_tex: texture_2d<f32>;` at the
// same binding (plus a private one-element NAME, so that tfjs's unused getNAME() helpers still
// compile), and the bind group gets an rgba32float texture, TEXTURE_WIDTH texels (vec4s) wide,
// into which the input is copied first: vec4 i is texel (i % TEXTURE_WIDTH, i / TEXTURE_WIDTH).
// Where a CPU lacks AVX-512, Mesa 22.3's lavapipe builds a storage load 10x as costly as a texel
// fetch or a uniform load (3.67 against 0.36 ns per float on a Zen 5 with AVX-512 masked off;
// with AVX-512 or on Mesa 25.0 1.0-1.5x: BENCHMARKS.md, "Texture loads"),
// and a texture has no 64 KiB limit: it carries the activations that a uniform buffer cannot.

/** Bytes of a uniform binding: WebGPU's default maxUniformBufferBindingSize. */
export const UNIFORM_INPUT_BYTES = 65536;

/** The WGSL line that marks input `name` as read through `parts` uniform buffers. */
export function uniformInputMarker(name: string, parts = 1): string {
  return `// uniform-input ${name} ${parts}`;
}

/** The WGSL line that marks vec4 input `name` as read through a texture (`name`_tex). */
export function textureInputMarker(name: string): string {
  return `// texture-input ${name}`;
}

/** Texels per row of an input texture (64 KiB of rgba32float: a multiple of the 256-byte copy row alignment). */
export const TEXTURE_WIDTH = 4096;
/** Rows of an input texture: WebGPU's default maxTextureDimension2D. */
export const TEXTURE_MAX_ROWS = 8192;

/** Whether an input of `floats` f32 values fits one input texture (as vec4 texels). */
export function fitsInputTexture(floats: number): boolean {
  return floats / 4 <= TEXTURE_WIDTH * TEXTURE_MAX_ROWS;
}

/** WGSL for texel `index` (an i32 expression) of texture input `name`: vec4 `index` of the input. */
export function texelLoad(name: string, index: string): string {
  return `textureLoad(${name}_tex, vec2<i32>((${index}) & ${TEXTURE_WIDTH - 1}, (${index}) >> ${
    Math.log2(TEXTURE_WIDTH)
  }u), 0)`;
}

/** A rewritten input: its binding and those of its further parts (uniform), or a texture. */
export interface UniformInput {
  binding: number;
  extra: number[];
  texture?: boolean;
}

interface TfjsEncoder {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
}

export interface UniformInputStats {
  /** Parts copied into uniform buffers (one per part per dispatch of a marked program). */
  copies: number;
}

const installed = new WeakMap<object, UniformInputStats>();

/**
 * A copy into a uniform buffer (`to`) or an input texture (`texture`), as encoded (the captured
 * step records and replays these with encodeInputCopy).
 */
export interface UniformInputCopy {
  from: GPUBuffer;
  fromOffset: number;
  to?: GPUBuffer;
  texture?: GPUTexture;
  size: number;
}

/** Encodes `c` (a copy recorded from listenToUniformInputCopies) into `encoder`. */
export function encodeInputCopy(encoder: GPUCommandEncoder, c: UniformInputCopy): void {
  if (c.to) {
    encoder.copyBufferToBuffer(c.from, c.fromOffset, c.to, 0, c.size);
    return;
  }
  // Whole rows, then the rest of the last one: a copy's rows all have the copy's width.
  const texels = c.size / 16;
  const rows = Math.floor(texels / TEXTURE_WIDTH);
  const rest = texels - rows * TEXTURE_WIDTH;
  const bytesPerRow = TEXTURE_WIDTH * 16;
  if (rows > 0) {
    encoder.copyBufferToTexture(
      { buffer: c.from, offset: c.fromOffset, bytesPerRow },
      { texture: c.texture! },
      [TEXTURE_WIDTH, rows],
    );
  }
  if (rest > 0) {
    encoder.copyBufferToTexture(
      { buffer: c.from, offset: c.fromOffset + rows * bytesPerRow, bytesPerRow },
      { texture: c.texture!, origin: [0, rows] },
      [rest, 1],
    );
  }
}

let copyListener: ((c: UniformInputCopy) => void) | null = null;

/** Calls `f` with every copy encoded from now on (null: stop); src/tf/step_capture.ts records them. */
export function listenToUniformInputCopies(f: ((c: UniformInputCopy) => void) | null): void {
  copyListener = f;
}

const uniformBuffers = new WeakSet<GPUBuffer>();

/** Whether `b` is one of the uniform buffers the inputs are copied into (never tfjs's). */
export function isUniformInputBuffer(b: GPUBuffer): boolean {
  return uniformBuffers.has(b);
}
const ARRAY = `array<vec4<f32>, ${UNIFORM_INPUT_BYTES / 16}>`;

/** Rewrites `code`'s marked inputs to uniform arrays; returns their bindings. */
export function rewriteUniformInputs(code: string): { code: string; inputs: UniformInput[] } {
  const inputs: UniformInput[] = [];
  let next = Math.max(-1, ...[...code.matchAll(/@binding\((\d+)\)/g)].map((m) => Number(m[1])));
  for (const [, name, count] of code.matchAll(/^\s*\/\/ uniform-input (\w+) (\d+)$/gm)) {
    const decl = new RegExp(
      `@group\\(0\\) @binding\\((\\d+)\\) var<storage, read> ${name}\\s*: array<vec4<f32>>;`,
    );
    const m = decl.exec(code);
    if (!m) throw new Error(`uniform input ${name}: no vec4 storage binding of that name`);
    const extra = Array.from({ length: Number(count) - 1 }, () => ++next);
    const decls = [
      `@group(0) @binding(${m[1]}) var<uniform> ${name}: ${ARRAY};`,
      ...extra.map((b, i) => `@group(0) @binding(${b}) var<uniform> ${name}_${i + 1}: ${ARRAY};`),
    ];
    code = code.replace(decl, decls.join("\n"));
    inputs.push({ binding: Number(m[1]), extra });
  }
  for (const [, name] of code.matchAll(/^\s*\/\/ texture-input (\w+)$/gm)) {
    const decl = new RegExp(
      `@group\\(0\\) @binding\\((\\d+)\\) var<storage, read> ${name}\\s*: array<vec4<f32>>;`,
    );
    const m = decl.exec(code);
    if (!m) throw new Error(`texture input ${name}: no vec4 storage binding of that name`);
    code = code.replace(
      decl,
      `@group(0) @binding(${m[1]}) var ${name}_tex: texture_2d<f32>;\n` +
        `var<private> ${name}: array<vec4<f32>, 1>;`,
    );
    inputs.push({ binding: Number(m[1]), extra: [], texture: true });
  }
  return { code, inputs };
}

/**
 * Installs the rewrite and the copies on a webgpu backend (once; returns its counters). Must
 * run after src/tf/dispatch_cache.ts's installDispatchCache, whose bind group cache then sees
 * the uniform buffers, not the input's.
 */
export function installUniformInputs(backend: object): UniformInputStats {
  const existing = installed.get(backend);
  if (existing) return existing;
  const stats: UniformInputStats = { copies: 0 };
  installed.set(backend, stats);
  const tfjs = backend as TfjsEncoder;
  const device = tfjs.device;

  const marked = new WeakMap<GPUShaderModule, UniformInput[]>();
  const createModule = device.createShaderModule.bind(device);
  device.createShaderModule = (d) => {
    if (!d.code.includes("// uniform-input ") && !d.code.includes("// texture-input ")) {
      return createModule(d);
    }
    const { code, inputs } = rewriteUniformInputs(d.code);
    const module = createModule({ ...d, code });
    marked.set(module, inputs);
    return module;
  };

  const layouts = new WeakMap<GPUBindGroupLayout, UniformInput[]>();
  const mark = (pipeline: GPUComputePipeline, inputs: UniformInput[] | undefined) => {
    if (!inputs) return pipeline;
    // Deno returns a new layout object per call: keep the one the bind hook will recognise.
    const layout = pipeline.getBindGroupLayout(0);
    layouts.set(layout, inputs);
    const get = pipeline.getBindGroupLayout.bind(pipeline);
    pipeline.getBindGroupLayout = (i: number) => (i === 0 ? layout : get(i));
    return pipeline;
  };
  const createPipeline = device.createComputePipeline.bind(device);
  device.createComputePipeline = (d) => mark(createPipeline(d), marked.get(d.compute.module));
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipelineAsync = async (d) =>
    mark(await createPipelineAsync(d), marked.get(d.compute.module));

  const buffers: GPUBuffer[] = [];
  const uniformBuffer = (i: number) => {
    if (!buffers[i]) {
      buffers[i] = device.createBuffer({
        size: UNIFORM_INPUT_BYTES,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `uniform input ${i}`,
      });
      uniformBuffers.add(buffers[i]);
    }
    return buffers[i];
  };
  // Input textures by rows (a power of 2), one per texture input of a dispatch; like the uniform
  // buffers, one set serves every dispatch (WebGPU orders each copy after earlier reads).
  const textures = new Map<string, GPUTexture>();
  const views = new Map<GPUTexture, GPUTextureView>();
  const inputTexture = (slot: number, texels: number) => {
    if (!fitsInputTexture(4 * texels)) {
      throw new Error(
        `texture input of ${texels} vec4s: over ${TEXTURE_WIDTH} x ${TEXTURE_MAX_ROWS} texels`,
      );
    }
    const needed = Math.ceil(texels / TEXTURE_WIDTH);
    const rows = Math.min(TEXTURE_MAX_ROWS, 2 ** Math.ceil(Math.log2(needed)));
    const key = `${slot}:${rows}`;
    let t = textures.get(key);
    if (!t) {
      t = device.createTexture({
        size: [TEXTURE_WIDTH, rows],
        format: "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
        label: `texture input ${key}`,
      });
      textures.set(key, t);
      views.set(t, t.createView());
    }
    return t;
  };
  const createBindGroup = device.createBindGroup.bind(device);
  device.createBindGroup = (d) => {
    const inputs = layouts.get(d.layout);
    if (!inputs) return createBindGroup(d);
    const entries = [...(d.entries as GPUBindGroupEntry[])];
    tfjs.ensureCommandEncoderReady();
    tfjs.endComputePassEncoder();
    let used = 0;
    let usedTextures = 0;
    for (const { binding, extra, texture } of inputs) {
      const at = entries.findIndex((e) => e.binding === binding);
      const source = entries[at].resource as GPUBufferBinding;
      const offset = source.offset ?? 0;
      const bytes = source.size ?? source.buffer.size - offset;
      if (texture) {
        if (bytes % 16 !== 0 || offset % 16 !== 0) {
          throw new Error(`texture input of ${bytes} bytes at ${offset}: not whole vec4s`);
        }
        const c = { from: source.buffer, fromOffset: offset, size: bytes };
        const copy = { ...c, texture: inputTexture(usedTextures++, bytes / 16) };
        encodeInputCopy(tfjs.commandEncoder!, copy);
        copyListener?.(copy);
        stats.copies++;
        entries[at] = { binding, resource: views.get(copy.texture)! };
        continue;
      }
      const parts = [binding, ...extra];
      const partBytes = bytes / parts.length;
      if (partBytes % 16 !== 0 || partBytes > UNIFORM_INPUT_BYTES) {
        throw new Error(
          `uniform input of ${bytes} bytes in ${parts.length} parts: each must be a multiple ` +
            `of 16 bytes and at most ${UNIFORM_INPUT_BYTES}`,
        );
      }
      parts.forEach((b, i) => {
        const target = uniformBuffer(used++);
        tfjs.commandEncoder!.copyBufferToBuffer(
          source.buffer,
          offset + i * partBytes,
          target,
          0,
          partBytes,
        );
        copyListener?.({
          from: source.buffer,
          fromOffset: offset + i * partBytes,
          to: target,
          size: partBytes,
        });
        stats.copies++;
        const entry = { binding: b, resource: { buffer: target } };
        if (i === 0) entries[at] = entry;
        else entries.push(entry);
      });
    }
    return createBindGroup({ ...d, entries });
  };
  return stats;
}
