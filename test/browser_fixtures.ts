// Fixtures for the serve/browser tests: a run folder holding an untrained (seeded) model's
// checkpoint, and crafted image files.

import * as tf from "@tensorflow/tfjs-core";
import { encode } from "fast-png";
import { createModel, type ModelName } from "../src/model/model.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { initTf } from "../src/tf/setup.ts";

/**
 * Writes `<dir>/checkpoints/best` for a freshly initialised model (seeded: the same weights on
 * every machine). Its predictions are arbitrary but deterministic, which is all a comparison
 * between two implementations needs. BN moving statistics are nudged off 0/1 so the folded
 * scale/shift are not trivial.
 */
export async function writeUntrainedRun(dir: string, name: ModelName = "enhanced"): Promise<void> {
  await initTf("cpu");
  const model = createModel(name, { seed: 7 });
  try {
    for (const v of model.variables) {
      if (v.name.endsWith("moving_mean")) v.variable.assign(tf.add(v.variable, 0.05));
      if (v.name.endsWith("moving_variance")) v.variable.assign(tf.mul(v.variable, 1.5));
    }
    await saveCheckpoint(`${dir}/checkpoints/best`, model, { config: { model: name } });
  } finally {
    model.dispose();
  }
}

/** A PNG whose IHDR declares width x height, followed by no image data (a decompression bomb). */
export function pngDeclaring(width: number, height: number): Uint8Array {
  const small = encode({ width: 1, height: 1, data: new Uint8Array([0]), channels: 1, depth: 8 });
  const out = small.slice();
  const v = new DataView(out.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  return out;
}

/** A grey PNG from 8-bit samples. */
export function greyPng(width: number, height: number, data: Uint8Array): Uint8Array {
  return encode({ width, height, data, channels: 1, depth: 8 });
}
