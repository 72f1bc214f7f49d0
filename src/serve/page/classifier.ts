/// <reference lib="dom" />
// The page's model side: backend start-up (WebGPU, else tfjs's CPU backend), the run's model from
// the server, and classification through the same modules as `deno task predict`
// (image_preprocess.ts for the pixels, eval/predict.ts for the forward pass and top-k).

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-webgpu";
import { registerOps } from "../../ops/registry.ts";
import { browserTilePlan } from "./browser_tiles.ts";
import type { TilePlan } from "../../ops/conv/tile_plan.ts";
import { UsageError } from "../../errors.ts";
import { CLASS_NAMES } from "../../data/fashion_mnist.ts";
import {
  checkDeclaredSize,
  hasJpegSignature,
  hasPngSignature,
  jpegDimensions,
  pngToGray,
  samplesToGray,
  toFashionMnist,
} from "../../eval/image_preprocess.ts";
import type { PreparedImage } from "../../eval/image_input.ts";
import { predictImages } from "../../eval/predict.ts";
import type { CheckpointMeta } from "../../model/checkpoint.ts";
import { restoreWeights } from "../../model/checkpoint.ts";
import { createModel, type Model } from "../../model/model.ts";

/** Largest file the page reads (checked on the File object, before reading it). */
export const MAX_FILE_BYTES = 20 * 1024 * 1024;

export interface BackendInfo {
  backend: "webgpu" | "cpu";
  /** "google | swiftshader", or why WebGPU is not used. */
  adapter: string;
  /** Set when the page fell back to the CPU backend: the reason, for the page. */
  fallback: string | null;
  /** The tile plan for this adapter (browser_tiles.ts); undefined on the CPU backend. */
  tiles: TilePlan | undefined;
}

/** Called when the WebGPU device is lost (a driver reset or crash): pending GPU reads never end. */
let onDeviceLost: ((reason: string) => void) | null = null;
export function setDeviceLostHandler(f: (reason: string) => void): void {
  onDeviceLost = f;
}

/** Tries WebGPU; falls back to the CPU backend and says why. */
export async function startBackend(): Promise<BackendInfo> {
  registerOps();
  silenceCpuBanner();
  let reason: string;
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    reason = "this browser has no WebGPU (navigator.gpu is missing)";
  } else {
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) {
      reason = "WebGPU is present but offers no adapter (disabled, or no usable GPU)";
    } else {
      const info = adapter.info;
      const tiles = browserTilePlan(info);
      const kind = tiles.kind;
      const name = [info.vendor, info.architecture, info.description].filter((s) => s).join(" | ") +
        (kind === "software" ? " (software adapter)" : "");
      try {
        if (await tf.setBackend("webgpu")) {
          await tf.ready();
          const device = (tf.backend() as unknown as { device: GPUDevice }).device;
          device.lost.then((lost) => onDeviceLost?.(lost.message || lost.reason));
          return { backend: "webgpu", adapter: name || "unnamed adapter", fallback: null, tiles };
        }
        reason = "the tfjs WebGPU backend did not start";
      } catch (e) {
        reason = `the tfjs WebGPU backend failed (${(e as Error).message})`;
      }
    }
  }
  await tf.setBackend("cpu");
  await tf.ready();
  return {
    backend: "cpu",
    adapter: "tfjs CPU backend (plain JavaScript)",
    fallback: reason,
    tiles: undefined,
  };
}

/** The CPU backend prints an "install tfjs-node" hint on first use; we choose it knowingly. */
function silenceCpuBanner() {
  const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
  if (cpu && "firstUse" in cpu) cpu.firstUse = false;
}

export interface LoadedModel {
  model: Model;
  meta: CheckpointMeta;
}

/** Fetches /model/checkpoint.json and /model/weights.bin and builds the model, run under `tiles`. */
export async function loadModel(tiles?: TilePlan): Promise<LoadedModel> {
  const [metaRes, binRes] = await Promise.all([
    fetch("/model/checkpoint.json"),
    fetch("/model/weights.bin"),
  ]);
  if (!metaRes.ok || !binRes.ok) {
    throw new Error(`the server did not send the model (HTTP ${metaRes.status}/${binRes.status})`);
  }
  const meta = await metaRes.json() as CheckpointMeta;
  const weights = new Float32Array(await binRes.arrayBuffer());
  const model = createModel(meta.model, meta.modelConfig);
  model.tiles = tiles;
  try {
    restoreWeights(model, { dir: "/model", meta, weights });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, meta };
}

/** PNG (decoded by fast-png, as predict does) or JPEG (decoded by the browser) -> 28x28. */
export async function prepareImage(bytes: Uint8Array, name: string): Promise<PreparedImage> {
  if (hasPngSignature(bytes)) {
    const { pixels, notes } = toFashionMnist(pngToGray(bytes, name));
    return { source: name, pixels, notes };
  }
  if (hasJpegSignature(bytes)) {
    const dims = jpegDimensions(bytes);
    if (!dims) throw new UsageError(`${name}: corrupt JPEG (no frame header)`);
    checkDeclaredSize(dims.width, dims.height, name);
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(new Blob([bytes as Uint8Array<ArrayBuffer>]));
    } catch {
      throw new UsageError(`${name}: corrupt JPEG (the browser cannot decode it)`);
    }
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const gray = samplesToGray(rgba, bitmap.width, bitmap.height, 4);
    bitmap.close();
    const { pixels, notes } = toFashionMnist(gray);
    return { source: name, pixels, notes };
  }
  throw new UsageError(`${name}: not a PNG or JPEG image`);
}

export interface Classification {
  source: string;
  notes: string[];
  pixels: Uint8Array;
  /** All ten classes, most probable first. */
  ranked: { label: number; name: string; p: number }[];
  /** Probabilities by class index. */
  probabilities: number[];
  ms: number;
}

/** Classifies one prepared image; times the forward pass and read-back. */
export async function classify(model: Model, image: PreparedImage): Promise<Classification> {
  const t0 = performance.now();
  const [pred] = await predictImages(model, [image], CLASS_NAMES.length);
  const ms = performance.now() - t0;
  const probabilities = new Array(CLASS_NAMES.length).fill(0);
  for (const r of pred.top) probabilities[r.label] = r.p;
  return {
    source: image.source,
    notes: image.notes,
    pixels: image.pixels,
    ranked: pred.top,
    probabilities,
    ms,
  };
}
