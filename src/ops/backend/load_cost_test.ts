// The load-cost probe (load_cost.ts): it runs on this adapter and its verdict follows its own
// times. Which verdict an adapter gets is a timing, not asserted here: measured, Mesa 22.3 with
// AVX2 code 70-72 ms storage against 16-17 ms uniform (costly), every other lavapipe 0.8-1.3x
// (BENCHMARKS.md, "Texture loads").

import assert from "node:assert/strict";
import { probeLoadCost, STORAGE_COSTLY } from "./load_cost.ts";
import { gpuTest } from "../../../test/helpers/op_check.ts";
import * as tf from "@tensorflow/tfjs-core";

gpuTest("load-cost probe: two positive times, costly exactly at STORAGE_COSTLY x", async () => {
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const r = await probeLoadCost(device);
  for (const ms of [r.storageMs, r.uniformMs]) assert.ok(Number.isFinite(ms) && ms > 0, `${ms}`);
  assert.equal(r.storageCostly, r.storageMs >= STORAGE_COSTLY * r.uniformMs);
});
