// Classifying user images (PNG of any size/colour, or IDX image files): top-k classes each.

import { CLASS_NAMES, PIXELS, type Split } from "../data/fashion_mnist.ts";
import { loadImageFile, type PreparedImage } from "./image_input.ts";
import { DEFAULT_BATCH, type InferenceModel, predictProbabilities } from "./inference.ts";
import { topK } from "./metrics.ts";

export interface Prediction {
  source: string;
  notes: string[];
  /** Most probable classes first. */
  top: { label: number; name: string; p: number }[];
}

/** Reads every file (all are checked before any model work); `limit` caps images per IDX file. */
export async function loadInputs(paths: readonly string[], limit = Infinity) {
  const images: PreparedImage[] = [];
  for (const path of paths) images.push(...await loadImageFile(path, limit));
  return images;
}

/** Packs prepared images into a Split (labels unknown: 0) so they go through imagesToTensor. */
export function imagesToSplit(images: readonly PreparedImage[]): Split {
  const data = new Uint8Array(images.length * PIXELS);
  images.forEach((img, i) => data.set(img.pixels, i * PIXELS));
  return { images: data, labels: new Uint8Array(images.length), count: images.length };
}

export async function predictImages(
  model: InferenceModel,
  images: readonly PreparedImage[],
  k = 3,
  batchSize = DEFAULT_BATCH,
): Promise<Prediction[]> {
  const probs = await predictProbabilities(model, imagesToSplit(images), batchSize);
  const n = CLASS_NAMES.length;
  return images.map((img, i) => ({
    source: img.source,
    notes: img.notes,
    top: topK(probs.subarray(i * n, (i + 1) * n), k).map((r) => ({
      ...r,
      name: CLASS_NAMES[r.label],
    })),
  }));
}

/** One aligned line per image: "file  1. Shirt 0.812  2. ...  [notes]". */
export function formatPredictions(preds: readonly Prediction[]): string {
  const width = Math.max(0, ...preds.map((p) => p.source.length));
  const nameWidth = Math.max(...CLASS_NAMES.map((c) => c.length));
  return preds.map((p) => {
    const top = p.top.map((t, i) => `${i + 1}. ${t.name.padEnd(nameWidth)} ${t.p.toFixed(3)}`);
    const notes = p.notes.length > 0 ? `  [${p.notes.join("; ")}]` : "";
    return `${p.source.padEnd(width)}  ${top.join("  ")}${notes}`;
  }).join("\n");
}
