// Adapter selection (initTf, --adapter hardware) and the device guard (lost device, uncaptured
// GPU errors). Device loss is tested in a subprocess: a destroyed device cannot be revived.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { UsageError } from "../src/errors.ts";
import { describeAdapter, initTf, probeAdapter, startTf } from "../src/tf/setup.ts";
import { STORAGE_COSTLY } from "../src/ops/backend/load_cost.ts";
import {
  clearDeviceFailure,
  deviceFailure,
  DeviceFailureError,
  installDeviceGuard,
} from "../src/tf/device_guard.ts";
import { GPU_TEST } from "./helpers/gpu.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" };
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, env }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** stderr without Mesa's/XDG's environment chatter. */
function ourLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) =>
    l.trim() !== "" && !/XDG_RUNTIME_DIR|MESA|^WARNING/.test(l)
  );
}

Deno.test({
  name: "initTf: webgpu report, describeAdapter line, hardware policy on software adapters",
  ...GPU_TEST,
  fn: async () => {
    const probe = await probeAdapter();
    assert.ok(probe, "this machine has a WebGPU adapter");
    const report = await initTf("webgpu");
    assert.equal(tf.getBackend(), "webgpu");
    assert.equal(report.description, probe.description);
    assert.ok(
      report.features.includes("timestamp-query") === probe.features.includes("timestamp-query"),
    );
    const notes = [
      ...(report.isSoftware ? ["software adapter"] : []),
      ...(report.loopCap === null
        ? []
        : [`loops stop after ${report.loopCap.toLocaleString("en-US")} iterations`]),
      ...((report.storageLoadCost ?? 0) >= STORAGE_COSTLY
        ? [`storage loads ${report.storageLoadCost!.toFixed(1)}x uniform loads`]
        : []),
    ];
    // Software adapters are probed for the cost of a storage load (load_cost.ts).
    assert.equal(report.storageLoadCost !== undefined, report.isSoftware);
    assert.equal(
      describeAdapter(report),
      `webgpu on ${report.description}${report.driver ? `, ${report.driver}` : ""}` +
        (notes.length ? ` [${notes.join(", ")}]` : ""),
    );
    // lavapipe is Mesa's: the line names its release (read from the loaded driver).
    if (/llvmpipe/.test(report.description)) assert.match(report.driver, /^Mesa \d+\.\d+\.\d+/);
    const lines: string[] = [];
    await startTf("demo", "webgpu", "any", (l) => lines.push(l));
    assert.deepEqual(lines, [`demo: ${describeAdapter(report)}`], "one start-up line");
    if (report.isSoftware) {
      await assert.rejects(() => initTf("webgpu", "hardware"), (e: Error) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /^--adapter hardware: only a software adapter/);
        assert.ok(e.message.includes(report.description), "names the adapter");
        return true;
      });
    } else {
      assert.equal((await initTf("webgpu", "hardware")).isSoftware, false);
    }
  },
});

Deno.test({
  name: "bench --adapter hardware: exit 2 with one clear line on a software adapter",
  ...GPU_TEST,
  fn: async () => {
    const probe = await probeAdapter();
    const r = await run([
      "run",
      "-A",
      "src/main.ts",
      "bench",
      "--suite",
      "roofline",
      "--quick",
      "--adapter",
      "hardware",
    ]);
    if (probe?.isSoftware) {
      assert.equal(r.code, 2, r.stderr);
      const lines = ourLines(r.stderr);
      assert.equal(lines.length, 1, `one line: ${JSON.stringify(lines)}`);
      assert.match(
        lines[0],
        /^bench: error: --adapter hardware: only a software adapter .*(llvmpipe|lavapipe|swiftshader)/i,
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    } else {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^bench: webgpu on /m);
    }
  },
});

Deno.test({
  name: "device guard: an uncaptured validation error is recorded with a clear message",
  ...GPU_TEST,
  fn: async () => {
    await initTf("webgpu");
    const seen: DeviceFailureError[] = [];
    assert.equal(installDeviceGuard((e) => seen.push(e)), true);
    assert.equal(deviceFailure(), null);
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    device.createBuffer({ size: 2 ** 40, usage: GPUBufferUsage.STORAGE }); // too large: invalid
    for (let i = 0; i < 50 && !deviceFailure(); i++) await new Promise((r) => setTimeout(r, 20));
    const f = deviceFailure();
    assert.ok(f instanceof DeviceFailureError, "failure recorded");
    assert.equal(f.kind, "validation");
    assert.match(f.message, /^GPU validation error: .*buffer size/i);
    assert.equal(seen.length, 1);
    assert.equal(seen[0], f);
    clearDeviceFailure();
    assert.equal(deviceFailure(), null);
  },
});

Deno.test({
  name: "device guard: a destroyed device ends the process with the guard's message",
  ...GPU_TEST,
  fn: async () => {
    const script = `
      import * as tf from "@tensorflow/tfjs-core";
      import { initTf } from "./src/tf/setup.ts";
      import { assertDeviceOk, explainDeviceError, installDeviceGuard, untilDeviceFailure }
        from "./src/tf/device_guard.ts";
      await initTf("webgpu");
      installDeviceGuard();
      const a = tf.ones([64]);
      await a.data();
      tf.backend().device.destroy();
      await new Promise((r) => setTimeout(r, 100));
      try {
        assertDeviceOk();
        console.log("no failure recorded");
      } catch (e) {
        console.log("checked: " + e.message);
      }
      try {
        await untilDeviceFailure(tf.add(a, 1).data());
        console.log("op succeeded");
      } catch (e) {
        console.log("op: " + explainDeviceError(e).message);
        Deno.exit(3);
      }
    `;
    const r = await run(["eval", "--config", "deno.json", script]);
    assert.equal(r.code, 3, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(
      r.stdout,
      /^checked: GPU device lost: .*destroyed by the program.*resume from the last checkpoint/m,
    );
    assert.match(r.stdout, /^op: GPU device lost: /m, "the op's cryptic error is explained");
  },
});
