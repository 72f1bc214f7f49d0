// Per-dispatch host work that repeats identically every training step, cached: tfjs-webgpu packs
// each dispatch's uniforms into a fresh uniform buffer (`queue.writeBuffer`) and creates a fresh
// bind group. Shapes, strides and most attributes are the same in every step, and after the
// first steps its buffer pool hands out the same buffers in the same order, so:
//   - uniform buffers are immutable and keyed by their bytes (written once, at creation);
//   - bind groups are keyed by the pipeline's layout and the exact buffer objects bound;
//   - each pipeline's bind group layout is fetched once.
// Each Deno WebGPU call costs ~30-40 µs of main-thread CPU here (BENCHMARKS.md, "The host side of
// a training step"). Both caches are LRU-bounded; an evicted uniform buffer is destroyed only
// after the next submit, since encoded work may still use it. A cached bind group can only be
// hit with the same live buffer objects, so it never binds a stale buffer.

import * as tf from "@tensorflow/tfjs-core";

interface Uniform {
  type: string;
  data: number[];
}

interface PatchableBackend {
  device: GPUDevice;
  makeUniforms(u: Uniform[]): { offset: number; size: number; buffer: GPUBuffer };
  submitQueue(): void;
}

export interface DispatchCacheStats {
  uniformHits: number;
  uniformMisses: number;
  bindGroupHits: number;
  bindGroupMisses: number;
}

/** Entries kept per cache: a training step has ~60 dispatches, ~15 of them with new uniforms. */
let capacity = 4096;

/** Sets the entries each cache keeps (tests shrink it to exercise eviction). */
export function setDispatchCacheCapacity(n: number): void {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`dispatch cache capacity ${n}`);
  capacity = n;
}

const installed = new WeakMap<object, DispatchCacheStats>();
let enabled = true;

/** Turns the caches off (tfjs's own per-dispatch path) or back on; for A/B runs and tests. */
export function setDispatchCacheEnabled(on: boolean): void {
  enabled = on;
}

/** Uniform buffers this cache created (immutable: written once, at creation). */
const cachedUniforms = new WeakSet<GPUBuffer>();
/** Pinned uniform buffers (a captured step binds them) and how many pins each has. */
const pins = new Map<GPUBuffer, number>();
/** Pinned buffers the LRU evicted: destroyed once their last pin goes. */
const evictedPinned = new Set<GPUBuffer>();
let destroyLater: (b: GPUBuffer) => void = (b) => b.destroy();

/** Whether `b` is one of this cache's immutable uniform buffers. */
export function isCachedUniform(b: GPUBuffer): boolean {
  return cachedUniforms.has(b);
}

/**
 * Keeps the cached uniform buffer `b` alive even if the LRU evicts it (src/tf/step_capture.ts
 * replays bind groups that use it); returns the unpin.
 */
export function pinUniformBuffer(b: GPUBuffer): () => void {
  pins.set(b, (pins.get(b) ?? 0) + 1);
  let pinned = true;
  return () => {
    if (!pinned) return;
    pinned = false;
    const n = pins.get(b)! - 1;
    if (n > 0) return void pins.set(b, n);
    pins.delete(b);
    if (evictedPinned.delete(b)) destroyLater(b);
  };
}

/** WGSL uniform layout as tfjs-webgpu's makeUniforms computes it (alignment per field size). */
export function packUniforms(programUniform: Uniform[]): ArrayBuffer {
  let offset = 0;
  let preLength = 0;
  let maxAlign = 1;
  const offsets: number[] = [];
  for (const d of programUniform) {
    if (d.data.length === 0) d.data = [1];
    const n = d.data.length;
    if (n > 6) throw new Error(`Unsupported ${n}D shape`);
    let align = n === 1 ? 4 : n === 2 ? 8 : 16;
    if (preLength === 5 || preLength === 6) align = 16;
    maxAlign = Math.max(maxAlign, align);
    offset = Math.ceil(offset / align) * align;
    preLength = n;
    offsets.push(offset);
    offset += n * 4;
  }
  const bytes = new ArrayBuffer(Math.ceil(offset / maxAlign) * maxAlign);
  programUniform.forEach((d, i) => {
    const View = d.type === "int32" ? Int32Array : d.type === "uint32" ? Uint32Array : Float32Array;
    new View(bytes, offsets[i], d.data.length).set(d.data);
  });
  return bytes;
}

function bytesKey(bytes: ArrayBuffer): string {
  const words = new Uint32Array(bytes);
  let key = "";
  for (let i = 0; i < words.length; i++) key += words[i].toString(36) + ",";
  return key;
}

/** Least-recently-used map: `get` refreshes, `set` evicts the oldest beyond `max`. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly evicted: (v: V) => void) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V) {
    this.map.set(k, v);
    while (this.map.size > capacity) {
      const [oldKey, old] = this.map.entries().next().value!;
      this.map.delete(oldKey);
      this.evicted(old);
    }
  }
}

/** Installs the caches on the active webgpu backend (once per backend); returns their counters. */
export function installDispatchCache(): DispatchCacheStats | null {
  if (tf.getBackend() !== "webgpu") return null;
  const backend = tf.backend() as unknown as PatchableBackend;
  const existing = installed.get(backend);
  if (existing) return existing;
  const stats: DispatchCacheStats = {
    uniformHits: 0,
    uniformMisses: 0,
    bindGroupHits: 0,
    bindGroupMisses: 0,
  };
  installed.set(backend, stats);
  const device = backend.device;

  let toDestroy: GPUBuffer[] = [];
  destroyLater = (b) => toDestroy.push(b);
  const uniforms = new Lru<GPUBuffer>((b) => {
    if (pins.has(b)) evictedPinned.add(b);
    else toDestroy.push(b);
  });
  const makeUniforms = backend.makeUniforms.bind(backend);
  const seenOnce = new Lru<true>(() => {});
  backend.makeUniforms = (programUniform) => {
    if (!enabled) return makeUniforms(programUniform);
    const bytes = packUniforms(programUniform);
    const key = bytesKey(bytes);
    let buffer = uniforms.get(key);
    if (buffer) {
      stats.uniformHits++;
    } else {
      stats.uniformMisses++;
      // Bytes seen for the first time go through tfjs's pooled buffer and one writeBuffer: a
      // third of them (Adam's step, dropout seeds) never recur, and a fresh buffer costs three
      // native calls (createBuffer, getMappedRange, unmap). Seen twice, they get their own.
      if (seenOnce.get(key) === undefined) {
        seenOnce.set(key, true);
        return makeUniforms(programUniform);
      }
      buffer = device.createBuffer({
        size: bytes.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        mappedAtCreation: true,
      });
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(bytes));
      buffer.unmap();
      cachedUniforms.add(buffer);
      uniforms.set(key, buffer);
    }
    return { offset: 0, size: bytes.byteLength, buffer };
  };
  const submitQueue = backend.submitQueue.bind(backend);
  backend.submitQueue = () => {
    submitQueue();
    if (toDestroy.length > 0) {
      for (const b of toDestroy) b.destroy();
      toDestroy = [];
    }
  };

  // Bind group layouts, once per pipeline (Deno returns a new object per call).
  const layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  const layoutIds = new WeakMap<GPUBindGroupLayout, number>();
  const bufferIds = new WeakMap<GPUBuffer, number>();
  let nextId = 1;
  const idOf = <K extends object>(ids: WeakMap<K, number>, k: K) => {
    let id = ids.get(k);
    if (id === undefined) ids.set(k, id = nextId++);
    return id;
  };
  const memoizeLayout = (pipeline: GPUComputePipeline) => {
    const get = pipeline.getBindGroupLayout.bind(pipeline);
    pipeline.getBindGroupLayout = (index: number) => {
      if (index !== 0) return get(index);
      let layout = layouts.get(pipeline);
      if (!layout) layouts.set(pipeline, layout = get(0));
      return layout;
    };
    return pipeline;
  };
  const createPipeline = device.createComputePipeline.bind(device);
  device.createComputePipeline = (d) => memoizeLayout(createPipeline(d));
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipelineAsync = async (d) => memoizeLayout(await createPipelineAsync(d));

  const groups = new Lru<GPUBindGroup>(() => {});
  const createBindGroup = device.createBindGroup.bind(device);
  device.createBindGroup = (d) => {
    if (!enabled) return createBindGroup(d);
    let key = `${idOf(layoutIds, d.layout)}|`;
    for (const e of d.entries as GPUBindGroupEntry[]) {
      const r = e.resource as GPUBufferBinding;
      if (!(r && "buffer" in r)) return createBindGroup(d); // textures, samplers: uncached
      key += `${e.binding}:${idOf(bufferIds, r.buffer)}:${r.offset ?? 0}:${r.size ?? "*"},`;
    }
    let group = groups.get(key);
    if (group) {
      stats.bindGroupHits++;
    } else {
      stats.bindGroupMisses++;
      group = createBindGroup(d);
      groups.set(key, group);
    }
    return group;
  };
  return stats;
}
