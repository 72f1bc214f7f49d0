import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { installStockOverride, OPS, registerOps, STOCK_OVERRIDES } from "./registry.ts";

Deno.test("registry: every op kernel has a webgpu kernel and a cpu reference of the same name", () => {
  for (const [op, k] of Object.entries(OPS)) {
    const webgpu = k.webgpu.map((c) => c.kernelName).sort();
    const cpu = k.cpu.map((c) => c.kernelName).sort();
    assert.deepEqual(cpu, webgpu, `${op}: cpu kernels vs webgpu kernels`);
    assert.ok(k.webgpu.every((c) => c.backendName === "webgpu"), `${op}: webgpu entries`);
    assert.ok(k.cpu.every((c) => c.backendName === "cpu"), `${op}: cpu entries`);
  }
  const names = Object.values(OPS).flatMap((k) => k.webgpu.map((c) => c.kernelName));
  assert.equal(new Set(names).size, names.length, "a kernel name belongs to one op");
});

Deno.test("registry: registerOps registers the table and the overrides, once", () => {
  registerOps();
  registerOps();
  for (const [op, k] of Object.entries(OPS)) {
    for (const c of [...k.webgpu, ...k.cpu]) {
      assert.equal(
        tf.getKernel(c.kernelName, c.backendName)?.kernelFunc,
        c.kernelFunc,
        `${op}: ${c.kernelName} on ${c.backendName}`,
      );
    }
    for (const g of k.gradients) {
      assert.equal(tf.getGradient(g.kernelName)?.gradFunc, g.gradFunc, `${op}: gradient`);
      assert.ok(names(OPS).has(g.kernelName), `${op}: gradient of our own kernel ${g.kernelName}`);
    }
  }
  for (const o of STOCK_OVERRIDES) {
    const installed = tf.getKernel(o.kernelName, o.backendName)!;
    installStockOverride(o); // a second install keeps the first (it must not wrap itself)
    assert.equal(tf.getKernel(o.kernelName, o.backendName)!.kernelFunc, installed.kernelFunc);
    assert.ok(o.why.length > 20, `${o.kernelName}: the reason is stated`);
  }
});

function names(ops: typeof OPS): Set<string> {
  return new Set(Object.values(ops).flatMap((k) => k.webgpu.map((c) => c.kernelName)));
}
