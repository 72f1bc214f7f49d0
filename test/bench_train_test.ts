// `deno task bench --suite train --quick`: every model variant timed, figures finite and
// positive, the real-data subset pass (--limit), and no tensors left behind.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { main } from "../src/cmd/bench.ts";
import { parseBenchDocument } from "../bench/report.ts";
import { TRAIN_VARIANTS } from "../bench/train_types.ts";
import { initTf } from "../src/tf/setup.ts";
import { GPU_TEST } from "./helpers/gpu.ts";
import { LOCAL_DATA_DIR, needsRealData } from "./helpers/data_fixtures.ts";

Deno.test({
  name: "bench --suite train --quick --limit: images/s and epoch times per model",
  ignore: needsRealData("bench --suite train --limit"),
  ...GPU_TEST,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "fmnist-bench-train-" });
    const original = console.log;
    const lines: string[] = [];
    console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
    try {
      await initTf("webgpu");
      const before = tf.memory().numTensors;
      const json = `${dir}/train.json`;
      await main([
        ...["--suite", "train", "--quick", "--limit", "6", "--json", json],
        ...["--data", LOCAL_DATA_DIR!],
      ]);
      assert.equal(tf.memory().numTensors, before, "models, optimizers and batches disposed");
      const doc = parseBenchDocument(await Deno.readTextFile(json), json);
      assert.equal(doc.roofline, null, "train alone does not run the roofline");
      const cases = doc.train!;
      assert.deepEqual(cases.map((c) => c.variant.id), TRAIN_VARIANTS.map((v) => v.id));
      for (const c of cases) {
        assert.equal(c.batch, 4);
        for (const v of [c.stats.medianMs, c.imagesPerS, c.epochSExtrapolated]) {
          assert.ok(Number.isFinite(v) && v > 0, `${c.id}: ${v}`);
        }
        assert.ok(Math.abs(c.imagesPerS - 4000 / c.stats.medianMs) < 1e-6 * c.imagesPerS);
        assert.ok(c.dispatchesPerStep! > 10, `${c.id}: ${c.dispatchesPerStep} dispatches`);
        assert.ok(c.hostIssueMs > 0 && c.hostIssueMs <= c.wallMs, `${c.id}: host issue / wall`);
        // Main-thread CPU: positive, at most the wall time, and split over the dispatches.
        assert.ok(c.mainCpuMs! > 0 && c.mainCpuMs! <= c.wallMs * 1.05, `${c.id}: ${c.mainCpuMs}`);
        assert.ok(
          Math.abs(c.mainCpuPerDispatchMs! * c.dispatchesPerStep! - c.mainCpuMs!) < 1e-9,
          `${c.id}: CPU per dispatch`,
        );
        assert.equal(c.optimizer, "fused");
        assert.equal(c.subset?.images, 6);
        assert.ok(c.subset!.seconds > 0 && Number.isFinite(c.subset!.epochSExtrapolated));
      }
      // Our kernels' steps are captured (the same dispatches, replayed); stock enhanced's
      // tf.dropout uploads fresh noise per step, so it is not, and says why.
      for (const c of cases.filter((c) => c.variant.ops === "fused")) {
        assert.equal(c.captured?.dispatchesPerStep, c.dispatchesPerStep, `${c.id}: captured`);
        assert.ok(c.captured!.mainCpuMs > 0 && c.captured!.hostIssueMs > 0, c.id);
      }
      const stockEnhanced = cases.find((c) => c.id.startsWith("enhanced --ops stock"))!;
      assert.equal(stockEnhanced.captured, null);
      assert.match(stockEnhanced.captureStatus!, /^step capture off: two steps differ/);
      for (const c of cases) {
        const ratio = c.speedupVsStock;
        assert.ok(c.variant.ops === "fused" ? ratio! > 0 : ratio === null, `${c.id}: vs stock`);
      }
      assert.match(lines.join("\n"), /^enhanced --ops stock\s+4\s/m);
    } finally {
      console.log = original;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
