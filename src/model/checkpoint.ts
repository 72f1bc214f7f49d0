// Checkpoints: `checkpoint.json` (model, configs, tensor table, optimizer and training state)
// plus `weights.bin` (the tensors as little-endian float32, back to back, at the listed byte
// offsets: the model's variables, then the optimizer's tensors). A checkpoint folder is written
// whole into a temp folder and swapped in by rename, so a crash leaves either the previous
// checkpoint or the new one, never a mix.
//
// This module knows the model's variables (weights and batch-norm running statistics). The
// optimizer section is the trainer's (Adam's moments and step, src/train/checkpointing.ts): it
// is stored and handed back here unread, so that loading weights (the browser page, eval,
// export) does not pull in the optimizer.

import * as tf from "@tensorflow/tfjs-core";
import { UsageError } from "../errors.ts";
import { createModel, type Model, MODEL_NAMES, type ModelConfig, type ModelName } from "./model.ts";

export const CHECKPOINT_FORMAT = "fmnist-checkpoint/1";

/** A missing, corrupt or mismatched checkpoint (a user-facing error: one line, exit 2). */
export class CheckpointError extends UsageError {
  override name = "CheckpointError";
}

export interface TensorEntry {
  name: string;
  shape: number[];
  /** Byte offset into weights.bin. */
  offset: number;
}

/** The optimizer section as stored: the trainer's JSON fields and its tensor table. */
export interface StoredOptimizer {
  [field: string]: unknown;
  tensors: TensorEntry[];
}

/** The optimizer section to save: JSON fields and named tensors (appended after the weights). */
export interface OptimizerSection {
  fields: Record<string, unknown>;
  tensors: { name: string; tensor: tf.Tensor }[];
}

export interface CheckpointMeta {
  format: string;
  model: ModelName;
  modelConfig: ModelConfig;
  /** The training configuration (CLI options) of the run. */
  config: Record<string, unknown>;
  tensors: TensorEntry[];
  optimizer: StoredOptimizer | null;
  /** Training-loop state: epoch, step, RNG, best metric, early-stopping/scheduler state. */
  state: Record<string, unknown>;
  savedAt: string;
}

export interface LoadedCheckpoint {
  dir: string;
  meta: CheckpointMeta;
  weights: Float32Array;
}

/** Writes model variables (and optionally an optimizer section) to `dir`, atomically. */
export async function saveCheckpoint(
  dir: string,
  model: Model,
  opts: {
    config: Record<string, unknown>;
    optimizer?: OptimizerSection;
    state?: Record<string, unknown>;
  },
): Promise<void> {
  const chunks: Float32Array[] = [];
  let offset = 0;
  const put = async (name: string, t: tf.Tensor): Promise<TensorEntry> => {
    const data = await t.data() as Float32Array;
    chunks.push(data);
    const entry = { name, shape: [...t.shape], offset };
    offset += data.byteLength;
    return entry;
  };
  const tensors: TensorEntry[] = [];
  for (const v of model.variables) tensors.push(await put(v.name, v.variable));
  let optimizer: StoredOptimizer | null = null;
  if (opts.optimizer) {
    const tensors: TensorEntry[] = [];
    for (const t of opts.optimizer.tensors) tensors.push(await put(t.name, t.tensor));
    optimizer = { ...opts.optimizer.fields, tensors };
  }
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT,
    model: model.name,
    modelConfig: model.config,
    config: opts.config,
    tensors,
    optimizer,
    state: opts.state ?? {},
    savedAt: new Date().toISOString(),
  };
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bytes.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at);
    at += c.byteLength;
  }
  await writeDirAtomic(dir, {
    "weights.bin": bytes,
    "checkpoint.json": new TextEncoder().encode(JSON.stringify(meta, null, 1) + "\n"),
  });
}

/** Writes `files` into a temp sibling folder, then swaps it in place of `dir`. */
export async function writeDirAtomic(dir: string, files: Record<string, Uint8Array>) {
  const tmp = `${dir}.tmp-${Deno.pid}`;
  const old = `${dir}.old`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(`${tmp}/${name}`, bytes);
  await Deno.remove(old, { recursive: true }).catch(() => {});
  const hadPrevious = await exists(dir);
  if (hadPrevious) await Deno.rename(dir, old);
  await Deno.rename(tmp, dir);
  if (hadPrevious) await Deno.remove(old, { recursive: true });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Resolves a run folder (-> checkpoints/best, else checkpoints/last), a checkpoint folder or a
 * checkpoint.json path to the checkpoint folder and its run folder.
 */
export async function resolveCheckpoint(
  path: string,
  prefer: "best" | "last" = "best",
): Promise<{ dir: string; runDir: string }> {
  const clean = path.replace(/\/+$/, "") || "/";
  if (clean.endsWith("checkpoint.json")) return resolveCheckpoint(dirname(clean), prefer);
  if (await exists(`${clean}/checkpoint.json`) || await exists(`${clean}.old/checkpoint.json`)) {
    const parent = dirname(clean);
    const runDir = parent.endsWith("checkpoints") ? dirname(parent) : parent;
    return { dir: clean, runDir };
  }
  const order = prefer === "best" ? ["best", "last"] : ["last"];
  for (const name of order) {
    const dir = `${clean}/checkpoints/${name}`;
    if (await exists(`${dir}/checkpoint.json`) || await exists(`${dir}.old/checkpoint.json`)) {
      return { dir, runDir: clean };
    }
  }
  if (!(await exists(clean))) throw new CheckpointError(`${path}: no such file or folder`);
  throw new CheckpointError(
    `${path}: no checkpoint found (expected checkpoints/${order.join(" or checkpoints/")}` +
      "/checkpoint.json in a run folder, or a checkpoint folder)",
  );
}

function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : p.slice(0, i);
}

/** Reads and validates a checkpoint folder (falls back to `<dir>.old` after a crash mid-swap). */
export async function readCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  if (!(await exists(`${dir}/checkpoint.json`)) && await exists(`${dir}.old/checkpoint.json`)) {
    dir = `${dir}.old`;
  }
  const jsonPath = `${dir}/checkpoint.json`;
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${jsonPath}: not found`);
    throw new CheckpointError(`${jsonPath}: corrupt checkpoint (${(e as Error).message})`);
  }
  if (meta?.format !== CHECKPOINT_FORMAT || !Array.isArray(meta.tensors)) {
    throw new CheckpointError(`${jsonPath}: not a ${CHECKPOINT_FORMAT} checkpoint`);
  }
  if (meta.optimizer != null && !Array.isArray(meta.optimizer.tensors)) {
    throw new CheckpointError(`${jsonPath}: optimizer section without a tensor table`);
  }
  if (!MODEL_NAMES.includes(meta.model)) {
    throw new CheckpointError(`${jsonPath}: unknown model "${meta.model}"`);
  }
  const binPath = `${dir}/weights.bin`;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(binPath);
  } catch (e) {
    throw new CheckpointError(`${binPath}: cannot read (${(e as Error).message})`);
  }
  const all = [...meta.tensors, ...(meta.optimizer?.tensors ?? [])];
  const expected = all.reduce((s, t) => s + 4 * t.shape.reduce((a, b) => a * b, 1), 0);
  if (bytes.byteLength !== expected) {
    throw new CheckpointError(
      `${binPath}: corrupt checkpoint (${bytes.byteLength} bytes, the table lists ${expected})`,
    );
  }
  const weights = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return { dir, meta, weights: weights.slice() };
}

/** The tensor of table entry `e` (of the model's or the optimizer's table) as a new tensor. */
export function checkpointTensor(ck: LoadedCheckpoint, e: TensorEntry): tf.Tensor {
  const n = e.shape.reduce((a, b) => a * b, 1);
  return tf.tensor(ck.weights.subarray(e.offset / 4, e.offset / 4 + n), e.shape, "float32");
}

/** Copies the checkpoint's weights into `model`; names and shapes must match exactly. */
export function restoreWeights(model: Model, ck: LoadedCheckpoint): void {
  const where = `${ck.dir}/checkpoint.json`;
  if (ck.meta.model !== model.name) {
    throw new CheckpointError(
      `${where}: checkpoint is for model "${ck.meta.model}", not "${model.name}"`,
    );
  }
  const byName = new Map(ck.meta.tensors.map((t) => [t.name, t]));
  for (const v of model.variables) {
    const e = byName.get(v.name);
    if (!e) throw new CheckpointError(`${where}: no variable "${v.name}" (a different model?)`);
    if (e.shape.join(",") !== v.variable.shape.join(",")) {
      throw new CheckpointError(
        `${where}: variable "${v.name}" has shape [${e.shape}], the model wants [${v.variable.shape}]`,
      );
    }
  }
  if (byName.size !== model.variables.length) {
    throw new CheckpointError(
      `${where}: holds ${byName.size} variables, the model has ${model.variables.length}`,
    );
  }
  for (const v of model.variables) {
    const t = checkpointTensor(ck, byName.get(v.name)!);
    v.variable.assign(t);
    t.dispose();
  }
}

/** Contract: a model ready for inference from a run folder or checkpoint path (best preferred). */
export async function loadModelForInference(
  pathOrRunDir: string,
): Promise<{ model: Model; config: Record<string, unknown>; runDir: string }> {
  const { dir, runDir } = await resolveCheckpoint(pathOrRunDir, "best");
  const ck = await readCheckpoint(dir);
  const model = createModel(ck.meta.model, ck.meta.modelConfig);
  try {
    restoreWeights(model, ck);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config: ck.meta.config, runDir };
}
