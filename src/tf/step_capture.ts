// A captured training step: one real step is recorded at the level of tfjs-webgpu's backend
// (each dispatch's pipeline, bind group and workgroup counts, each upload's target and bytes), and
// later steps replay that stream into one command buffer without running tfjs's per-op host
// code: setPipeline, setBindGroup and dispatchWorkgroups per dispatch (62 dispatches encoded in
// 0.15-0.25 ms of main-thread CPU in Deno 2.9 on this machine's Zen 5 EPYC) instead of tfjs's
// shape checks, uniform packing, bind-group lookups and kernel bookkeeping.
//
// Why a replay computes exactly what the uncaptured step computes:
// - The stream is the same. Two consecutive real steps are recorded (A, then B) and compared with
//   every buffer renamed by first appearance: same programs and pipelines, workgroup counts,
//   uniform bytes, bytes of every upload that is not a step input, and the same pattern of
//   buffer use. Any difference (a uniform that changes per step such as a dropout seed, an
//   upload of fresh host data such as augmentation) refuses the capture with that line as the
//   reason. Values that legitimately change per step reach the device as step inputs
//   (src/tf/step_inputs.ts), whose bytes a replay writes before its command buffer.
// - The buffers are the same. The replay reuses B's buffers. After B, every buffer B touched is
//   either held by a live variable (the weights tfjs now points to), held by a long-lived
//   read-only tensor (the resident training set), a uniform buffer of src/tf/dispatch_cache.ts
//   (pinned: never destroyed while captured), or back in tfjs's free pool: those are removed
//   from the pool (owned by the capture), so no tfjs op between replays can get them. A buffer
//   held outside the step and written by it refuses the capture.
// - The state is carried over. Variables that B re-assigned (weights: FusedAdam writes fresh
//   buffers; BN running statistics) read their old buffer (`in`) and leave their value in a new
//   one (`out`, which the variable holds afterwards). A replay first copies each `out` into its
//   `in`, so the recorded stream reads the current values and writes the next ones where the
//   variables already point: tfjs's view stays consistent. Variables updated in place (Adam's
//   moments) need nothing.
// - Nothing else moved. Before each replay every tracked variable must still hold the same
//   dataId and buffer, alone (refCount 1: a clone would see the in-place change), and a replay
//   drops the values tfjs cached on the CPU when they were read (a checkpoint); a checkpoint
//   restore, an uncaptured step (the last partial batch) or a disposed model fails this check
//   and the caller falls back and records again.
// Within a step tfjs releases no buffer before its submit (src/tf/submit.ts defers the submit
// to the step's end, and tfjs frees a queued tensor's buffer only at submit), so no buffer is
// reused inside the stream; an upload target touched before its upload, or written after it,
// refuses the capture all the same.
// What the recording sees: tfjs-webgpu 4.22 encodes every dispatch in recordAndSubmit (our
// multi-output programs go through it too) and every host-to-device copy in uploadToGPU; the
// copies of a filter into its uniform buffers (or of an input into its texture) that
// src/tf/uniform_inputs.ts encodes before a `.ubo` (`.tex`) conv dispatch are recorded from that
// module's listener and replayed in stream order (between compute passes), so a replay's
// dispatch reads the values of this step; its
// copyBuffer, a read-back (read, readSync) or tfjs's profiler timers inside the step refuse the
// capture (a replay would not repeat what the host did with a value it read).

import * as tf from "@tensorflow/tfjs-core";
import { isCachedUniform, packUniforms, pinUniformBuffer } from "./dispatch_cache.ts";
import { listenToStepInputs, type StepInputSource, type StepValues } from "./step_inputs.ts";
import {
  encodeInputCopy,
  isUniformInputBuffer,
  listenToUniformInputCopies,
  type UniformInputCopy,
} from "./uniform_inputs.ts";
import { submitPending } from "./submit.ts";

interface TensorData {
  resource: GPUBuffer | null;
  values: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  refCount: number;
}

interface Program {
  pipeline: GPUComputePipeline;
  dispatch: [number, number, number];
  outputNames?: string[];
}

interface CaptureBackend {
  device: GPUDevice;
  queue: GPUQueue;
  tensorMap: { get(id: object): TensorData | undefined };
  bufferManager: { freeBuffers: Map<string, GPUBuffer[]>; numFreeBuffers: number };
  activeTimers: unknown;
  commandEncoder: GPUCommandEncoder | null;
  commandQueueOwnedIds: WeakSet<object>;
  recordAndSubmit(p: Program, out: tf.TensorInfo, ins: tf.TensorInfo[], u?: unknown): void;
  uploadToGPU(dataId: object): void;
  makeUniforms(u: { type: string; data: number[] }[]): { buffer: GPUBuffer };
  copyBuffer(b: GPUBuffer): GPUBuffer;
  read(dataId: object): Promise<unknown>;
  readSync(dataId: object): unknown;
  makeTensorInfo(shape: number[], dtype: string): tf.TensorInfo;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
}

interface DispatchOp {
  kind: "dispatch";
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  workgroups: [number, number, number];
  /** Storage buffers in binding order; the first `written` are the program's outputs. */
  buffers: GPUBuffer[];
  written: number;
  uniform: GPUBuffer;
  uniformKey: string;
}

interface UploadOp {
  kind: "upload";
  dst: GPUBuffer;
  bytes: Uint8Array;
  source: StepInputSource | null;
  /** A step input's place among the step's step inputs, in the order the step made them. */
  made: number;
}

/**
 * An input copied into a uniform buffer or an input texture before the dispatch that reads it
 * (uniform_inputs.ts).
 */
interface CopyOp extends UniformInputCopy {
  kind: "copy";
}

type Op = DispatchOp | UploadOp | CopyOp;

interface VariableAt {
  variable: tf.Variable;
  dataId: object;
  buffer: GPUBuffer | null;
}

/** One real step, as recorded. */
export interface Recording {
  ops: Op[];
  /** Set when something in the step cannot be replayed. */
  failure: string | null;
  before: Map<string, VariableAt>;
  after: Map<string, VariableAt>;
  /** Buffers that held the step's returned tensors (disposed: copies went to the caller). */
  outputs: { buffer: GPUBuffer; shape: number[]; dtype: tf.DataType }[];
}

export function captureBackend(): CaptureBackend | null {
  return tf.getBackend() === "webgpu" ? tf.backend() as unknown as CaptureBackend : null;
}

function variablesNow(backend: CaptureBackend): Map<string, VariableAt> {
  const now = new Map<string, VariableAt>();
  for (const [name, v] of Object.entries(tf.engine().registeredVariables)) {
    const buffer = backend.tensorMap.get(v.dataId)?.resource ?? null;
    now.set(name, { variable: v, dataId: v.dataId, buffer });
  }
  return now;
}

function bytesOf(d: TensorData): Uint8Array | string {
  if (d.dtype === "float32") return new Uint8Array(Float32Array.from(d.values!).buffer);
  if (d.dtype === "int32" || d.dtype === "bool") {
    return new Uint8Array(Int32Array.from(d.values!).buffer);
  }
  return `an upload of a ${d.dtype} tensor`;
}

/** Temporarily replaces `obj[name]`; returns the undo. */
function wrap<T extends object, K extends keyof T>(obj: T, name: K, make: (orig: T[K]) => T[K]) {
  const own = Object.prototype.hasOwnProperty.call(obj, name);
  const saved = obj[name];
  const orig = typeof saved === "function" ? (saved as CallableFunction).bind(obj) : saved;
  obj[name] = make(orig as T[K]);
  return () => {
    if (own) obj[name] = saved;
    else delete obj[name];
  };
}

/**
 * Runs `fn` (one step's tensor work, returning its result tensors) for real while recording
 * what it sends to the device. Returns fresh copies of the results (the originals are disposed,
 * so their buffers can be owned by a capture) and the recording.
 */
export function recordStep<T extends tf.Tensor[]>(
  fn: () => T,
): { results: T; recording: Recording } {
  const backend = captureBackend();
  if (!backend) throw new Error("recordStep: the webgpu backend only");
  submitPending(); // earlier work goes before the recorded stream
  const rec: Recording = {
    ops: [],
    failure: null,
    before: variablesNow(backend),
    after: new Map(),
    outputs: [],
  };
  const fail = (why: string) => rec.failure ??= why;
  const stepInputs = new Map<object, { source: StepInputSource; made: number }>();
  let lastGroup: GPUBindGroup | null = null;
  let lastEntries: GPUBindGroupEntry[] = [];
  let lastUniformKey = "";
  const device = backend.device;
  const undo = [
    wrap(device, "createBindGroup", (orig) => (d) => {
      lastGroup = orig(d);
      lastEntries = [...d.entries];
      return lastGroup;
    }),
    wrap(backend, "makeUniforms", (orig) => (u) => {
      const r = orig(u);
      lastUniformKey = new Uint32Array(packUniforms(u)).join(",");
      return r;
    }),
    wrap(backend, "recordAndSubmit", (orig) => (program, output, inputs, uniforms) => {
      if (backend.activeTimers != null) fail("tfjs's profiler timers are on");
      lastGroup = null;
      orig(program, output, inputs, uniforms);
      const buffers = lastEntries.map((e) => (e.resource as GPUBufferBinding).buffer);
      const uniform = buffers.pop();
      if (!lastGroup || !uniform) return void fail("a dispatch without a bind group");
      rec.ops.push({
        kind: "dispatch",
        pipeline: program.pipeline,
        group: lastGroup,
        workgroups: [...program.dispatch] as [number, number, number],
        buffers,
        written: program.outputNames?.length ?? 1,
        uniform,
        uniformKey: lastUniformKey,
      });
    }),
    wrap(backend, "uploadToGPU", (orig) => (dataId) => {
      const d = backend.tensorMap.get(dataId);
      const bytes = d && d.resource == null && d.values != null ? bytesOf(d) : null;
      orig(dataId);
      if (typeof bytes === "string") return void fail(bytes);
      if (bytes) {
        const input = stepInputs.get(dataId);
        rec.ops.push({
          kind: "upload",
          dst: d!.resource!,
          bytes,
          source: input?.source ?? null,
          made: input?.made ?? -1,
        });
      }
    }),
    wrap(backend, "copyBuffer", (orig) => (b) => {
      fail("a buffer copy (tfjs copyBuffer) inside the step");
      return orig(b);
    }),
    wrap(backend, "read", (orig) => (dataId) => {
      fail("a read-back inside the step");
      return orig(dataId);
    }),
    wrap(backend, "readSync", (orig) => (dataId) => {
      fail("a read-back inside the step");
      return orig(dataId);
    }),
  ];
  listenToStepInputs({
    stepInput: (t, source) => stepInputs.set(t.dataId, { source, made: stepInputs.size }),
  });
  listenToUniformInputCopies((c) => rec.ops.push({ kind: "copy", ...c }));
  let results: T;
  try {
    results = fn();
  } finally {
    listenToUniformInputCopies(null);
    listenToStepInputs(null);
    for (const u of undo.reverse()) u();
  }
  // The results' buffers are the stream's; the caller gets copies, encoded after the step.
  const copies = results.map((t) => {
    const buffer = backend.tensorMap.get(t.dataId)?.resource;
    if (!buffer) {
      fail("a result tensor without a buffer");
      return t.clone();
    }
    rec.outputs.push({ buffer, shape: t.shape, dtype: t.dtype });
    const info = backend.makeTensorInfo(t.shape, t.dtype);
    backend.uploadToGPU(info.dataId);
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.commandEncoder!.copyBufferToBuffer(
      buffer,
      0,
      backend.tensorMap.get(info.dataId)!.resource!,
      0,
      4 * t.size,
    );
    backend.commandQueueOwnedIds.add(info.dataId);
    backend.commandQueueOwnedIds.add(t.dataId);
    return tf.engine().makeTensorFromTensorInfo(info);
  });
  tf.dispose(results);
  submitPending(); // frees the step's temporaries into the pool
  // A replay produces every step input, in the order the step made them: one that reached no
  // kernel would be produced by the step but not by a replay (a seed drawn or not).
  const uploaded = rec.ops.filter((o) => o.kind === "upload" && o.source !== null).length;
  if (uploaded !== stepInputs.size) fail("a step input that no kernel reads");
  rec.after = variablesNow(backend);
  return { results: copies as T, recording: rec };
}

/** Each buffer named by its first appearance in the recording, for comparing two recordings. */
export function describeRecording(rec: Recording): string[] {
  const ids = new Map<GPUBuffer, number>();
  const id = (b: GPUBuffer | null) => {
    if (b === null) return "none";
    let n = ids.get(b);
    if (n === undefined) ids.set(b, n = ids.size);
    return `b${n}`;
  };
  const pipelines = new Map<GPUComputePipeline, number>();
  const pipelineId = (p: GPUComputePipeline) => {
    let n = pipelines.get(p);
    if (n === undefined) pipelines.set(p, n = pipelines.size);
    return n;
  };
  const lines = rec.ops.map((op, i) => {
    if (op.kind === "copy") {
      const to = op.to ? id(op.to) : "an input texture";
      return `op ${i}: copy ${op.size} bytes of ${id(op.from)} at ${op.fromOffset} to ${to}`;
    }
    if (op.kind === "upload") {
      const what = op.source === null
        ? `bytes ${Array.from(op.bytes).join(",")}`
        : "name" in op.source
        ? `step input "${op.source.name}" (${op.bytes.length} bytes)`
        : `step input (${op.bytes.length} bytes)`;
      return `op ${i}: upload to ${id(op.dst)}: ${what}${op.source ? ` made ${op.made}` : ""}`;
    }
    return `op ${i}: dispatch pipeline ${pipelineId(op.pipeline)} [${op.workgroups}] ` +
      `buffers ${op.buffers.map(id)} (${op.written} written) uniforms ${op.uniformKey}`;
  });
  for (const [name, a] of rec.after) {
    const b = rec.before.get(name);
    const used = ids.has(a.buffer!) || (b && ids.has(b.buffer!));
    if (used) lines.push(`variable ${name}: ${id(b?.buffer ?? null)} -> ${id(a.buffer)}`);
  }
  for (const name of rec.before.keys()) {
    if (!rec.after.has(name)) lines.push(`variable ${name} disposed during the step`);
  }
  rec.outputs.forEach((o, i) => lines.push(`result ${i}: ${id(o.buffer)} [${o.shape}]`));
  return lines;
}

/** Why two recordings differ (the first differing line of each), or null when they match. */
export function compareRecordings(a: Recording, b: Recording): string | null {
  const la = describeRecording(a), lb = describeRecording(b);
  const cut = (s: string | undefined) =>
    s === undefined ? "(nothing)" : s.length > 160 ? s.slice(0, 160) + "..." : s;
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `two steps differ: ${cut(la[i])} / ${cut(lb[i])}`;
  }
  return null;
}

const poolKey = (b: GPUBuffer) => `${b.size}_${b.usage}`;

/** A recorded step, its buffers owned, ready to replay. */
export class CapturedStep {
  private readonly owned: GPUBuffer[] = [];
  private readonly unpin: (() => void)[] = [];
  private readonly copies: { from: GPUBuffer; to: GPUBuffer }[] = [];
  private readonly tracked: VariableAt[] = [];
  private readonly inputs: {
    dst: GPUBuffer;
    size: number;
    source: StepInputSource;
    made: number;
  }[] = [];
  /** The stream a replay encodes: dispatches, and the uniform-input copies between them. */
  private readonly stream: (DispatchOp | CopyOp)[];
  private released = false;
  /** Dispatches per replay. */
  readonly dispatchCount: number;

  private constructor(private readonly backend: CaptureBackend, private readonly rec: Recording) {
    this.stream = rec.ops.filter((o): o is DispatchOp | CopyOp => o.kind !== "upload");
    this.dispatchCount = this.stream.filter((o) => o.kind === "dispatch").length;
  }

  /** A capture of recording `rec` (the later of two matching ones), or why there is none. */
  static fromRecording(rec: Recording): CapturedStep | string {
    const backend = captureBackend();
    if (!backend) return "not on the webgpu backend";
    if (rec.failure) return rec.failure;
    const step = new CapturedStep(backend, rec);
    const why = step.take();
    if (why !== null) {
      step.release();
      return why;
    }
    return step;
  }

  /** Takes ownership of the recording's buffers; null, or why it cannot. */
  private take(): string | null {
    const { rec, backend } = this;
    const touched = new Set<GPUBuffer>();
    const written = new Set<GPUBuffer>();
    let misplacedUpload = false;
    rec.ops.forEach((op, i) => {
      if (op.kind === "copy") {
        // Its target is the uniform-input module's own buffer or texture, rewritten before every read.
        touched.add(op.from);
        return;
      }
      if (op.kind === "upload") {
        const later = rec.ops.slice(i + 1).some((o) =>
          (o.kind === "dispatch" && o.buffers.slice(0, o.written).includes(op.dst)) ||
          (o.kind === "copy" && o.to === op.dst)
        );
        if (touched.has(op.dst) || later) misplacedUpload = true;
        touched.add(op.dst);
        written.add(op.dst);
        return;
      }
      op.buffers.forEach((b, k) => {
        touched.add(b);
        if (k < op.written) written.add(b);
      });
      touched.add(op.uniform);
    });
    if (misplacedUpload) return "an upload target is used before its upload or written after it";
    const uploads = rec.ops.filter((o): o is UploadOp => o.kind === "upload");
    // Variables: which ones the stream uses, and how their buffers move.
    const heldByVariable = new Set<GPUBuffer>();
    for (const [name, b] of rec.before) {
      const a = rec.after.get(name);
      if (!a) {
        if (b.buffer && touched.has(b.buffer)) return `variable ${name} disposed during the step`;
        continue;
      }
      const usedBefore = b.buffer !== null && touched.has(b.buffer);
      const usedAfter = a.buffer !== null && touched.has(a.buffer);
      if (!usedBefore && !usedAfter && a.buffer === b.buffer) continue;
      if (!a.buffer) return `variable ${name} has no buffer after the step`;
      if (!usedAfter) return `variable ${name} was assigned a buffer the step did not write`;
      if (backend.tensorMap.get(a.dataId)?.refCount !== 1) {
        return `variable ${name} shares its buffer with another tensor`;
      }
      heldByVariable.add(a.buffer);
      this.tracked.push(a);
      if (a.buffer !== b.buffer && usedBefore) {
        if (a.buffer.size !== b.buffer!.size) return `variable ${name} changed its buffer's size`;
        this.copies.push({ from: a.buffer, to: b.buffer! });
      }
    }
    for (const o of rec.outputs) {
      if (!written.has(o.buffer)) return "a result the step does not write";
    }
    const free = backend.bufferManager.freeBuffers;
    for (const b of touched) {
      if (heldByVariable.has(b)) continue;
      const list = free.get(poolKey(b));
      const at = list ? list.indexOf(b) : -1;
      if (at >= 0) {
        list!.splice(at, 1);
        backend.bufferManager.numFreeBuffers--;
        this.owned.push(b);
      } else if (isCachedUniform(b)) {
        this.unpin.push(pinUniformBuffer(b));
      } else if (isUniformInputBuffer(b)) {
        continue; // lives as long as the backend; every read follows its copy in the stream
      } else if (written.has(b)) {
        return "the step writes a buffer that a tensor outside it holds";
      }
    }
    for (const c of this.copies) {
      if (!this.owned.includes(c.to)) return "a variable's old buffer is still held elsewhere";
    }
    const order = copyOrder(this.copies);
    if (typeof order === "string") return order;
    this.copies.splice(0, this.copies.length, ...order);
    const copyTargets = new Set(this.copies.map((c) => c.to));
    for (const u of uploads) {
      if (u.source === null) continue; // constant: its bytes stay in the owned buffer
      if (copyTargets.has(u.dst)) return "a step input lands in a variable's buffer";
      this.inputs.push({ dst: u.dst, size: u.bytes.byteLength, source: u.source, made: u.made });
    }
    this.inputs.sort((a, b) => a.made - b.made);
    return null;
  }

  /** Whether every variable the stream uses still holds the buffer it held after the recording. */
  valid(): boolean {
    if (this.released) return false;
    for (const t of this.tracked) {
      if (t.variable.isDisposed || t.variable.dataId !== t.dataId) return false;
      const d = this.backend.tensorMap.get(t.dataId);
      if (!d || d.resource !== t.buffer || d.refCount !== 1) return false;
    }
    return true;
  }

  /**
   * One replay: the step inputs (named ones from `args`, the others produced now), then the
   * copies, dispatches and result copies as one command buffer. Returns the results as fresh
   * tensors (the caller disposes them), or null when the capture is no longer valid (nothing
   * was run or produced then).
   */
  replay(args: Record<string, StepValues>): tf.Tensor[] | null {
    if (!this.valid()) return null;
    const { backend } = this;
    for (const i of this.inputs) {
      if ("name" in i.source) {
        const v = args[i.source.name];
        if (!v || v.byteLength !== i.size) return null;
      }
    }
    submitPending(); // tfjs's encoded work goes first
    const queue = backend.queue;
    for (const i of this.inputs) {
      const v = "name" in i.source ? args[i.source.name] : i.source.produce();
      if (v.byteLength !== i.size) {
        throw new Error(`captured step: a step input of ${v.byteLength} bytes, recorded ${i.size}`);
      }
      queue.writeBuffer(i.dst, 0, v as Int32Array<ArrayBuffer>);
    }
    const encoder = backend.device.createCommandEncoder();
    for (const c of this.copies) encoder.copyBufferToBuffer(c.from, 0, c.to, 0, c.from.size);
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    for (const op of this.stream) {
      if (op.kind === "copy") { // between passes, in stream order (as tfjs encoded it)
        pass?.end();
        pass = null;
        encodeInputCopy(encoder, op);
        continue;
      }
      if (!pass) {
        pass = encoder.beginComputePass();
        pipeline = null;
      }
      if (op.pipeline !== pipeline) pass.setPipeline(pipeline = op.pipeline);
      pass.setBindGroup(0, op.group);
      pass.dispatchWorkgroups(op.workgroups[0], op.workgroups[1], op.workgroups[2]);
    }
    pass?.end();
    const infos = this.rec.outputs.map((o) => {
      const info = backend.makeTensorInfo(o.shape, o.dtype);
      backend.uploadToGPU(info.dataId);
      const size = 4 * o.shape.reduce((a, b) => a * b, 1);
      encoder.copyBufferToBuffer(
        o.buffer,
        0,
        backend.tensorMap.get(info.dataId)!.resource!,
        0,
        size,
      );
      return info;
    });
    queue.submit([encoder.finish()]);
    // A read of a variable (a checkpoint) caches its values on the CPU, and tfjs answers later
    // reads from that cache; the replay changed the buffers under the same dataIds.
    for (const t of this.tracked) backend.tensorMap.get(t.dataId)!.values = null;
    return infos.map((info) => tf.engine().makeTensorFromTensorInfo(info));
  }

  /** Gives the owned buffers back to tfjs's pool and unpins the uniforms. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const pool = this.backend.bufferManager;
    for (const b of this.owned) {
      const key = poolKey(b);
      if (!pool.freeBuffers.has(key)) pool.freeBuffers.set(key, []);
      pool.freeBuffers.get(key)!.push(b);
      pool.numFreeBuffers++;
    }
    this.owned.length = 0;
    for (const u of this.unpin) u();
    this.unpin.length = 0;
  }

  /** Buffers the capture owns (out of tfjs's pool), for leak checks. */
  get ownedBuffers(): number {
    return this.owned.length;
  }
}

/**
 * Orders the parallel assignment to <- from so that no copy overwrites a buffer a later copy
 * still reads; a cycle (two variables swapping buffers) has no such order.
 */
function copyOrder(
  copies: { from: GPUBuffer; to: GPUBuffer }[],
): { from: GPUBuffer; to: GPUBuffer }[] | string {
  const left = [...copies];
  const done: typeof copies = [];
  while (left.length > 0) {
    const i = left.findIndex((c) => !left.some((o) => o !== c && o.from === c.to));
    if (i < 0) return "variables' buffers swap places across the step (a copy cycle)";
    done.push(...left.splice(i, 1));
  }
  return done;
}
