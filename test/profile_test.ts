// `deno task profile`: kernel aggregation (hand-checkable numbers), Chrome trace structure, and
// one tiny real profile of the enhanced model (fused vs stock) with its trace file.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { main } from "../src/cmd/profile.ts";
import { initTf } from "../src/tf/setup.ts";
import {
  type ChromeTrace,
  parsePrograms,
  type StepProfile,
  summarizeKernels,
  summarizePrograms,
  toChromeTrace,
} from "../bench/trace.ts";
import { GPU_TEST } from "./helpers/gpu.ts";

const STEPS: StepProfile[] = [1, 2].map((step) => ({
  step,
  kernels: [
    {
      name: "ConvBnReluTrain",
      ms: 3,
      inputShapes: [[2, 8, 8, 1]],
      outputShapes: [[2, 8, 8, 4]],
      programs: [["ConvProgram", 2], ["BnStatsProgram", 1]],
    },
    { name: "Add", ms: 0.5, inputShapes: [], outputShapes: [], programs: [["BinaryOp", 0.5]] },
    { name: "Add", ms: 0.5, inputShapes: [], outputShapes: [], programs: [["BinaryOp", 0.5]] },
  ],
}));

/** Every trace event has the fields Perfetto needs, with sane values. */
function assertWellFormed(trace: ChromeTrace) {
  assert.ok(Array.isArray(trace.traceEvents) && trace.traceEvents.length > 0);
  for (const e of trace.traceEvents) {
    assert.equal(typeof e.name, "string", JSON.stringify(e));
    assert.ok(e.name.length > 0);
    assert.ok(e.ph === "X" || e.ph === "M", `ph ${e.ph}`);
    for (const k of ["ts", "dur", "pid", "tid"] as const) {
      assert.ok(Number.isFinite(e[k]) && e[k] >= 0, `${e.name}.${k} = ${e[k]}`);
    }
  }
}

Deno.test("trace: parsePrograms reads tfjs-webgpu extraInfo", () => {
  assert.deepEqual(parsePrograms("Conv2DMMProgram: 1.25, BinaryOpProgram: 0.5"), [
    ["Conv2DMMProgram", 1.25],
    ["BinaryOpProgram", 0.5],
  ]);
  assert.deepEqual(parsePrograms(""), []);
  assert.deepEqual(parsePrograms(undefined), []);
});

Deno.test("trace: per-kernel totals, means and shares over steps", () => {
  const kernels = summarizeKernels(STEPS);
  assert.deepEqual(kernels.map((k) => k.name), ["ConvBnReluTrain", "Add"]);
  const [conv, add] = kernels;
  assert.deepEqual([conv.calls, conv.totalMs, conv.meanMs], [2, 6, 3]);
  assert.deepEqual([add.calls, add.totalMs, add.meanMs], [4, 2, 0.5]);
  assert.equal(conv.sharePct, 75);
  assert.equal(add.sharePct, 25);
  const programs = summarizePrograms(STEPS);
  assert.deepEqual(programs.map((p) => [p.name, p.calls, p.totalMs]), [
    ["ConvProgram", 2, 4],
    ["BinaryOp", 4, 2], // ties with BnStatsProgram: by name
    ["BnStatsProgram", 2, 2],
  ]);
});

Deno.test("trace: Chrome trace lays kernels end to end per run", () => {
  const trace = toChromeTrace([{ label: "enhanced fused", steps: STEPS }], { batch: 2 });
  assertWellFormed(JSON.parse(JSON.stringify(trace)));
  const kernels = trace.traceEvents.filter((e) => e.cat === "kernel");
  assert.equal(kernels.length, 6);
  // 3 + 0.5 + 0.5 ms per step, in µs, back to back.
  assert.deepEqual(kernels.map((e) => e.ts), [0, 3000, 3500, 4000, 7000, 7500]);
  const steps = trace.traceEvents.filter((e) => e.cat === "step");
  assert.deepEqual(steps.map((e) => [e.ts, e.dur]), [[0, 4000], [4000, 4000]]);
  const programs = trace.traceEvents.filter((e) => e.cat === "program" && e.ts < 3000);
  assert.deepEqual(programs.map((e) => [e.name, e.ts, e.dur]), [
    ["ConvProgram", 0, 2000],
    ["BnStatsProgram", 2000, 1000],
  ]);
  assert.equal(trace.metadata.batch, 2);
});

Deno.test({
  name: "profile: enhanced model, tiny batch, fused vs stock, trace file",
  ...GPU_TEST,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "fmnist-profile-test-" });
    const lines: string[] = [];
    const original = console.log;
    console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
    try {
      const path = `${dir}/trace.json`;
      await initTf("webgpu");
      const before = tf.memory().numTensors;
      await main([
        "--batch",
        "2",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--top",
        "50",
        "--trace",
        path,
      ]);
      assert.equal(tf.memory().numTensors, before, "no tensors left behind");
      const out = lines.join("\n");
      assert.match(out, /^profile: webgpu on /m);
      assert.match(out, /^kernel\s+calls\/step\s+total ms\s+mean ms\s+share$/m);
      assert.match(out, /^ConvBnReluTrain\b/m, "our fused kernel shows up in the table");
      assert.match(out, /stock\/fused \d+\.\d+x/);
      // The host side of the step: main-thread CPU per step and per dispatch, and its clock.
      assert.match(
        out,
        /^main-thread CPU per step \d+\.\d+ ms, per dispatch \d+\.\d+ ms \(mean of \d+, call to read-back; (ffi|proc) thread clock\)$/m,
      );
      const trace = JSON.parse(await Deno.readTextFile(path)) as ChromeTrace;
      assertWellFormed(trace);
      const processes = trace.traceEvents.filter((e) => e.name === "process_name");
      assert.deepEqual(processes.map((e) => e.args?.name), [
        "enhanced --ops fused",
        "enhanced --ops stock",
      ]);
      const kernelNames = new Set(
        trace.traceEvents.filter((e) => e.cat === "kernel").map((e) => e.name),
      );
      assert.ok(
        kernelNames.has("ConvBnReluTrain") && kernelNames.has("Conv2D"),
        [...kernelNames].join(),
      );
    } finally {
      console.log = original;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
