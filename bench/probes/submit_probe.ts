// Where a training step's call waits: times every backend method, device call and queue call
// of two warm steps and prints those over 3 ms, and each queue.submit with when it ran.
//   FMNIST_AUTOTUNE=off deno run -A bench/probes/submit_probe.ts [BATCH] [MODEL] [nodefer]
// `nodefer` keeps tfjs's submit every 15 dispatches inside the step (what be6abbb did). On
// lavapipe 22.3 it shows a submit made while an earlier submission still runs blocking until
// that one ends (src/tf/submit.ts).
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../src/tf/setup.ts";
import type { ModelName } from "../../src/model/model.ts";
import { fixedBatchStep } from "../step_fixture.ts";

await initTf("webgpu");
const batch = Number(Deno.args[0] ?? 128);
const modelName = (Deno.args[1] ?? "enhanced") as ModelName;
type Fn = (...a: unknown[]) => unknown;
type Obj = Record<string, unknown>;
const backend = tf.backend() as unknown as Obj & { device: GPUDevice };
const slow: string[] = [];
let on = false;
let stepT0 = 0;
function wrap(obj: Obj, name: string, label: string) {
  const f = obj[name];
  if (typeof f !== "function") return;
  obj[name] = function (this: unknown, ...a: unknown[]) {
    const t = performance.now();
    const r = (f as Fn).apply(this, a);
    const d = performance.now() - t;
    if (on && d > 3) {
      slow.push(`${label}.${name} ${d.toFixed(1)} ms at ${(t - stepT0).toFixed(1)} ms`);
    }
    return r;
  };
}
for (const k of Object.getOwnPropertyNames(Object.getPrototypeOf(backend))) {
  if (k !== "constructor") wrap(backend, k, "backend");
}
const dev = backend.device as unknown as Obj;
for (const k of ["createBuffer", "createBindGroup", "createCommandEncoder"]) wrap(dev, k, "device");
for (const k of ["submit", "writeBuffer"]) wrap(backend.device.queue as unknown as Obj, k, "queue");
if (Deno.args[2] === "nodefer") {
  const env = tf.env() as unknown as Obj;
  const set = (env.set as Fn).bind(env);
  env.set = (k: unknown, v: unknown) =>
    k === "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE" ? undefined : set(k, v);
}
const { step } = fixedBatchStep(modelName, batch);
for (let i = 0; i < 4; i++) {
  on = i >= 2;
  stepT0 = performance.now();
  const { issueMs, wallMs } = await step();
  console.log(
    `step ${i}: the call returns after ${issueMs.toFixed(1)} ms, ` +
      `the loss is read back after ${wallMs.toFixed(1)} ms`,
  );
  if (on) console.log(slow.splice(0).map((s) => `  ${s}`).join("\n"));
}
