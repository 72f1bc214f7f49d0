// Same-run A/B of the training step across source trees. Copy this file into each tree's bench/
// (it must resolve that tree's tfjs) and run it from the tree's root:
//   cd <tree> && deno run -A bench/step_ab.ts BATCH STEPS [MODEL]
// It imports the tree's src/ by path, so an old checkout works too. Prints one JSON line for
// MODEL (default enhanced; fused ops, the tree's default optimizer): dispatches per step and the
// median wall, issue and process CPU time per step (CPU time: all llvmpipe threads; steadier under
// load), and the main thread's mean CPU time per step, call to read-back and of the step call
// alone (the former grows with the read-back's wait: a captured enhanced step at batch 512,
// 5 s of wall, used 5.2 ms, at batch 128 1.4-1.9 ms) (clock_gettime(CLOCK_THREAD_CPUTIME_ID),
// inlined here so that an old tree without src/sys/thread_cpu.ts works too).
// STEP_AB_CAPTURE=on: the step through src/train/step_capture_policy.ts, timed once it replays
// (the line's `capture` field says which path ran and why).
import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
const root = Deno.cwd();
const { initTf, describeAdapter } = await import(`${root}/src/tf/setup.ts`);
const { createModel } = await import(`${root}/src/model/model.ts`);
const { makeTrainStepWithMetrics } = await import(`${root}/src/train/step.ts`);
let createAdam: ((m: unknown, lr: number) => tf.Optimizer) | null = null;
try {
  createAdam = (await import(`${root}/src/train/optimizer.ts`)).createAdam;
} catch { /* old tree */ }
const libc = Deno.dlopen("libc.so.6", {
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
});
const ts = new BigInt64Array(2);
const threadCpuMs = () => {
  libc.symbols.clock_gettime(3, ts);
  return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
};
const adapter = await initTf("webgpu");
// STEP_AB_DISPATCH_CACHE=off: this tree's step without src/tf/dispatch_cache.ts (where it exists).
if (Deno.env.get("STEP_AB_DISPATCH_CACHE") === "off") {
  try {
    (await import(`${root}/src/tf/dispatch_cache.ts`)).setDispatchCacheEnabled(false);
  } catch { /* old tree: no cache */ }
}
type Policy = {
  run(key: string, args: object, encode: () => tf.Tensor[]): tf.Tensor[];
  status(): string;
  dispatchesPerReplay: number | null;
  active: boolean;
  dispose(): void;
};
let policy: Policy | null = null;
if (Deno.env.get("STEP_AB_CAPTURE") === "on") {
  const { StepCapturePolicy } = await import(`${root}/src/train/step_capture_policy.ts`);
  policy = new StepCapturePolicy("on") as Policy;
}
const batch = Number(Deno.args[0] ?? 64), steps = Number(Deno.args[1] ?? 3);
const modelName = Deno.args[2] ?? "enhanced";
const backend = tf.backend() as unknown as { recordAndSubmit: (...a: unknown[]) => void };
let dispatches = 0;
const orig = backend.recordAndSubmit.bind(backend);
backend.recordAndSubmit = (...a: unknown[]) => {
  dispatches++;
  orig(...a);
};
const model = createModel(modelName, { ops: "fused", seed: 1, l2: 1e-4 });
const opt = createAdam ? createAdam(model, 1e-3) : tf.train.adam(1e-3);
const step = makeTrainStepWithMetrics(model, opt);
const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
const y = tf.tidy(() =>
  tf.cast(tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 2) as tf.Tensor1D, 10), "float32")
) as tf.Tensor2D;
const run = async () => {
  const d0 = dispatches;
  const c0 = process.cpuUsage();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  const encode = () =>
    tf.tidy(() => {
      const r = step(x, y);
      return [r.loss, r.correct];
    });
  const [l, c] = policy ? policy.run(String(batch), {}, encode) : encode();
  const t1 = performance.now();
  const mainIssue = threadCpuMs() - m0;
  await l.data();
  await c.data();
  const t2 = performance.now();
  tf.dispose([l, c]);
  const cu = process.cpuUsage(c0);
  const main = threadCpuMs() - m0;
  return {
    wall: t2 - t0,
    issue: t1 - t0,
    d: dispatches - d0,
    cpu: (cu.user + cu.system) / 1000,
    main,
    mainIssue,
  };
};
await run();
await run();
while (policy && !policy.active && policy.status().startsWith("step capture on")) await run();
const rs: {
  wall: number;
  issue: number;
  d: number;
  cpu: number;
  main: number;
  mainIssue: number;
}[] = [];
for (let i = 0; i < steps; i++) rs.push(await run());
const med = (k: "wall" | "issue" | "cpu") =>
  rs.map((r) => r[k]).sort((a, b) => a - b)[rs.length >> 1];
console.log(JSON.stringify({
  tree: root,
  dispatchCache: Deno.env.get("STEP_AB_DISPATCH_CACHE") ?? "on",
  model: modelName,
  adapter: describeAdapter(adapter),
  batch,
  optimizer: opt.getClassName(),
  dispatches: policy?.active ? policy.dispatchesPerReplay : rs[0].d,
  capture: policy ? policy.status() : "off",
  wallMs: med("wall"),
  issueMs: med("issue"),
  imagesPerS: batch / (med("wall") / 1000),
  cpuMs: med("cpu"),
  mainThreadCpuMs: rs.reduce((a, r) => a + r.main, 0) / rs.length,
  mainThreadIssueCpuMs: rs.reduce((a, r) => a + r.mainIssue, 0) / rs.length,
  samples: rs.map((r) => Math.round(r.wall)),
}));
