// `deno task bench` on tiny shapes (--quick): JSON document structure, markdown, --compare,
// flag errors, and no tensor leaks across repeated cases. Never asserts on time.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { main } from "../src/cmd/bench.ts";
import { QUICK_LAYERS, runKernelSuite } from "../bench/kernels_suite.ts";
import { compareDocuments, parseBenchDocument, renderComparison, SCHEMA } from "../bench/report.ts";
import { UsageError } from "../src/errors.ts";
import { GPU_TEST, initWebGpu } from "./helpers/gpu.ts";
import { withTempDir } from "./helpers/data_fixtures.ts";

/** Runs `fn` with console.log captured; returns what it printed. */
async function captureLog(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.log = original;
  }
  return lines.join("\n");
}

function assertPositive(n: unknown, what: string) {
  assert.equal(typeof n, "number", `${what} is a number`);
  assert.ok(Number.isFinite(n as number) && (n as number) > 0, `${what} = ${n}: finite and > 0`);
}

function assertStats(s: unknown, what: string) {
  const st = s as Record<string, unknown>;
  for (const k of ["medianMs", "minMs", "maxMs", "hostMedianMs"]) {
    assertPositive(st[k], `${what}.${k}`);
  }
  assert.ok((st.minMs as number) <= (st.medianMs as number), `${what}: min <= median`);
  assert.ok((st.medianMs as number) <= (st.maxMs as number), `${what}: median <= max`);
  assert.ok(Array.isArray(st.samples) && st.samples.length >= 1, `${what}.samples`);
  assert.ok(["gpu-timestamp", "host-sync"].includes(st.clock as string), `${what}.clock`);
}

Deno.test({
  name: "bench --quick: roofline + kernels JSON has every figure, markdown table, compare",
  ...GPU_TEST,
  fn: async () => {
    await withTempDir(async (dir) => {
      const json = `${dir}/run.json`;
      const md = `${dir}/run.md`;
      const argv = [
        "--suite",
        "kernels",
        "--quick",
        "--json",
        json,
        "--markdown",
        md,
      ];
      const out = await captureLog(() => main(argv));
      assert.match(out, /^bench: webgpu on /m, "start-up line names the adapter");
      const doc = parseBenchDocument(await Deno.readTextFile(json), json);
      assert.equal(doc.schema, SCHEMA);
      assert.ok(!Number.isNaN(Date.parse(doc.date)), "date is ISO");
      assert.equal(doc.command, `deno task bench ${argv.join(" ")}`);
      assert.ok(
        doc.revision === null || /^[0-9a-f]{4,}(-dirty)?$/.test(doc.revision),
        doc.revision!,
      );
      assert.equal(doc.adapter.backend, "webgpu");
      assert.ok(doc.adapter.description.length > 0);

      // The kernels suite measures the roofline first, for its % columns.
      const r = doc.roofline!;
      assertStats(r.copy.stats, "roofline.copy");
      assertStats(r.matmul.stats, "roofline.matmul");
      assertPositive(r.copy.gbPerS, "copy GB/s");
      assertPositive(r.matmul.gflopPerS, "matmul GFLOP/s");

      const cases = doc.kernels!;
      assert.equal(cases.length, QUICK_LAYERS.length * 3, "2 layers x 3 modes x 1 batch");
      for (const c of cases) {
        assert.deepEqual(c.errors, [], `${c.id}: no failures`);
        for (const k of ["flops", "bytes", "batch", "speedupVsStock", "target"] as const) {
          assertPositive(c[k], `${c.id}.${k}`);
        }
        for (const impl of [c.fused!, c.stock!]) {
          assertStats(impl.stats, c.id);
          for (const k of ["gflopPerS", "gbPerS", "pctPeakFlops", "pctPeakBandwidth"] as const) {
            assertPositive(impl[k], `${c.id}.${k}`);
          }
        }
        // The CPU comparison runs at the smallest (here: only) batch.
        assertStats(c.cpu!.stats, `${c.id}.cpu`);
        assertPositive(c.speedupVsCpu, `${c.id}.speedupVsCpu`);
        assert.equal(typeof c.targetMet, "boolean");
      }
      assert.match(out, /train-fwd 8x8x1->4 k3 s1 same\s+2\s/);

      const markdown = await Deno.readTextFile(md);
      assert.match(markdown, /\| case \| batch \| fused ms \|/);
      assert.match(markdown, /Reproduce: `deno task bench --suite kernels --quick/);

      // --compare against a copy whose fused times are doubled: ratio 2 for those cases.
      const old = structuredClone(doc);
      for (const c of old.kernels!) c.fused!.stats.medianMs *= 2;
      const rows = compareDocuments(old, doc);
      const fusedRows = rows.filter((row) => row.name.endsWith(" fused"));
      assert.equal(fusedRows.length, cases.length);
      for (const row of fusedRows) assert.ok(Math.abs(row.ratio - 2) < 1e-9, row.name);
      const oldPath = `${dir}/old.json`;
      await Deno.writeTextFile(oldPath, JSON.stringify(old));
      const text = await captureLog(() =>
        main(["--suite", "roofline", "--quick", "--compare", oldPath])
      );
      assert.match(text, /Comparison with .* \(old\/new > 1: faster now\)/);
      assert.match(text, /roofline copy\s+\S+\s+\S+\s+\S+x/, "roofline rows in common");
      assert.doesNotMatch(text, /kernels .* fused/, "only cases in both runs");
      assert.match(renderComparison(rows, old, doc), /2\.00x/);
    }, "fmnist-bench-test-");
  },
});

Deno.test({
  name: "bench: repeated kernel cases leave no tensors behind",
  ...GPU_TEST,
  fn: async () => {
    await initWebGpu();
    const opts = {
      layers: QUICK_LAYERS.slice(1),
      batches: [2],
      modes: ["train-fwd" as const, "train-fwd-bwd" as const, "infer" as const],
      timing: { warmup: 1, repeats: 2 },
      ceilings: null,
      cpu: true,
    };
    await runKernelSuite(opts); // first run: compiles, fills pools
    const before = tf.memory().numTensors;
    const cases = await runKernelSuite(opts);
    assert.equal(tf.memory().numTensors, before, "numTensors flat across runs");
    assert.equal(tf.getBackend(), "webgpu", "CPU comparison restores the backend");
    assert.equal(cases.length, 3);
    assert.deepEqual(cases.flatMap((c) => c.errors), []);
  },
});

Deno.test({
  name: "bench: bad flags and files give one-line UsageErrors naming the flag",
  ...GPU_TEST,
  fn: async () => {
    await withTempDir(async (dir) => {
      const bad = `${dir}/bad.json`;
      await Deno.writeTextFile(bad, JSON.stringify({ hello: 1 }));
      const cases: [string[], RegExp][] = [
        [["--compare", `${dir}/missing.json`], /^--compare .*missing\.json/],
        [["--compare", bad], /^--compare .*bad\.json: not a bench result/],
        [["--batches", "0,32"], /^--batches must be positive integers/],
        [["--modes", "fwd"], /^--modes must be a subset of/],
        [["--suite", "roofline", "--backend", "cpu"], /^--suite roofline .*--backend webgpu/],
        [["--suite", "nope"], /^--suite must be one of/],
      ];
      for (const [argv, re] of cases) {
        await assert.rejects(
          () => captureLog(() => main([...argv, "--quick"])),
          (e: Error) => {
            assert.ok(e instanceof UsageError, `${argv}: UsageError, got ${e}`);
            assert.match(e.message, re);
            assert.ok(!e.message.includes("\n"));
            return true;
          },
        );
      }
    }, "fmnist-bench-test-");
  },
});
