// Timing helpers and roofline kernels: statistics on hand-checkable samples, the roofline
// kernels' results against tfjs ops, and GPU timestamps covering our own WebGPU programs.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { measure, resolveClock, roundRobin, summarize } from "../bench/timing.ts";
import { median, quantile } from "../src/stats.ts";
import { rooflineCopy, rooflineMatMul } from "../bench/roofline.ts";
import { convBnReluWork } from "../bench/work.ts";
import { assertClose } from "./helpers/compare.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";

Deno.test("summarize: median, min/max and IQR", () => {
  assert.deepEqual(summarize([5, 1, 3]), { medianMs: 3, minMs: 1, maxMs: 5, iqrMs: 0 });
  // sorted 1 2 3 4 10: q1 = 2, q3 = 4.
  assert.deepEqual(summarize([10, 2, 4, 1, 3]), { medianMs: 3, minMs: 1, maxMs: 10, iqrMs: 2 });
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.throws(() => summarize([]), /no samples/);
});

Deno.test("median: middle value, mean of the two middles, input left unsorted", () => {
  const xs = [9, 1, 5];
  assert.equal(median(xs), 5);
  assert.deepEqual(xs, [9, 1, 5]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.throws(() => median([]), /no values/);
});

Deno.test(
  "roundRobin: untimed warm-up rounds, rows called in turn, results disposed",
  GPU_TEST,
  async () => {
    await initWebGpu();
    const calls: string[] = [];
    const rows = ["a", "b"].map((name) => () => {
      calls.push(name);
      return tf.fill([4], 1);
    });
    const before = tf.memory().numTensors;
    const out = await roundRobin(rows, { warmup: 1, repeats: 2, gpu: false });
    assert.deepEqual(calls, ["a", "b", "a", "b", "a", "b"]);
    assert.deepEqual(out.map((r) => r.length), [2, 2]);
    assert.ok(out.flat().every((s) => s.gpuMs === null && s.hostMs >= 0));
    assert.equal(tf.memory().numTensors, before, "every result disposed");
  },
);

Deno.test("convBnReluWork: FLOPs and bytes of the enhanced model's first layer", () => {
  const l = { h: 28, w: 28, cin: 1, cout: 32, k: 3, stride: 1, pad: "same" as const };
  const fwd = 2 * 32 * 28 * 28 * 32 * 9 * 1;
  const w = convBnReluWork(l, 32, "train-fwd");
  assert.equal(w.flops, fwd);
  // x + w + gamma/beta + y + mean/variance, f32.
  assert.equal(w.bytes, 4 * (32 * 784 + 288 + 64 + 32 * 784 * 32 + 64));
  assert.equal(convBnReluWork(l, 32, "train-fwd-bwd", true).flops, 3 * fwd);
  assert.equal(convBnReluWork(l, 32, "train-fwd-bwd", false).flops, 2 * fwd);
  assert.equal(convBnReluWork(l, 32, "infer").flops, fwd);
});

Deno.test({
  name: "roofline kernels match tfjs; tf.time counts our programs (GPU timestamps)",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const x = tf.randomUniform([4096], -1, 1, "float32", 5) as tf.Tensor1D;
    const a = tf.randomUniform([64, 96], -1, 1, "float32", 6) as tf.Tensor2D;
    const b = tf.randomUniform([96, 32], -1, 1, "float32", 7) as tf.Tensor2D;
    try {
      const y = rooflineCopy(x, 3);
      const yExpected = tf.mul(x, 3);
      assertClose(await y.data(), await yExpected.data(), { atol: 0, rtol: 1e-7 }, "copy");
      const c = rooflineMatMul(a, b);
      const cExpected = tf.matMul(a, b);
      assertClose(await c.data(), await cExpected.data(), { atol: 1e-5, rtol: 1e-5 }, "matmul");
      tf.dispose([y, yExpected, c, cExpected]);
      assert.throws(
        () => tf.tidy(() => rooflineMatMul(tf.zeros([12, 32]), tf.zeros([32, 32]))),
        /multiples of 8/,
      );

      if (resolveClock() === "gpu-timestamp") {
        let out: tf.Tensor | null = null;
        const info = await tf.time(() => {
          out = rooflineMatMul(a, b);
        });
        tf.dispose(out!);
        assert.ok((info.kernelMs as number) > 0, "kernelMs from timestamps");
        const extra = (info as unknown as { getExtraProfileInfo(): string }).getExtraProfileInfo();
        assert.match(extra, /RooflineMatMulProgram: [\d.]+/);
      }
      const before = tf.memory().numTensors;
      const stats = await measure(() => rooflineCopy(x), { warmup: 1, repeats: 3 });
      assert.equal(tf.memory().numTensors, before, "measure disposes the results");
      assert.equal(stats.samples.length, 3);
      assert.equal(stats.clock, resolveClock());
      assert.ok(stats.minMs > 0 && stats.minMs <= stats.medianMs && stats.medianMs <= stats.maxMs);
    } finally {
      tf.dispose([x, a, b]);
    }
  },
});
