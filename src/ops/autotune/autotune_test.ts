// Autotuning: the cache (keyed by adapter, kept across restarts, corrupt or stale files ignored
// with one warning), the choice of the fastest candidate (fake candidates, fake clock), and one
// real tuning of the tiled conv's candidates on the WebGPU adapter (llvmpipe here and in CI).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf, probeAdapter } from "../../tf/setup.ts";
import { winogradApplies } from "../conv/winograd_geometry.ts";
import {
  cachedConvTable,
  type ConvLayer,
  convProblems,
  layerGeometry,
  tuneConvProblems,
} from "./autotune_conv.ts";
import {
  autotuneForTraining,
  cachedTilePlan,
  convLayersOf,
  MIN_STEPS_TO_TUNE,
  openTuneSession,
} from "../../train/autotune_model.ts";
import { candidateConfigs, defaultConfig, rowWindowApplies } from "../conv/tiling.ts";
import { backendAdapterKind, tileConfigFor, tilePlan } from "../conv/tile_plan.ts";
import { convGeometry } from "../conv/geometry.ts";
import {
  type AdapterIdentity,
  adapterIdentity,
  adapterKey,
  AutotuneCache,
  CACHE_FORMAT,
  CACHE_VERSION,
  type CacheEntry,
  cpuIdentity,
  defaultCachePath,
  pickFastest,
  tuneProblem,
} from "./autotune.ts";
import { autotuneSetting } from "../../flags.ts";
import { dispatchedConvLayers } from "../../../test/helpers/dispatched_conv_layers.ts";
import { architecture } from "../../model/model.ts";

const LLVMPIPE: AdapterIdentity = adapterIdentity(
  {
    vendor: "65541",
    architecture: "",
    device: "0",
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  },
  "",
  "deno 2.9.6",
);
const H200: AdapterIdentity = adapterIdentity(
  { vendor: "4318", architecture: "hopper", device: "8997", description: "NVIDIA H200" },
  "580.159.04",
  "deno 2.9.6",
);

function entry(choice: string, timings: Record<string, number | null>): CacheEntry {
  return { choice, timings, clock: "gpu-timestamp", date: "2026-12-01T00:00:00.000Z" };
}

function collector() {
  const lines: string[] = [];
  return { lines, warn: (l: string) => lines.push(l) };
}

/** Runs `code` in a fresh Deno process (a restart); returns its stdout. */
async function inSubprocess(code: string, env: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "autotune_sub_" });
  const script = `${dir}/probe.ts`;
  await Deno.writeTextFile(script, code);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", "--no-lock", script],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

Deno.test("autotune cache: keyed by adapter, survives a restart, merges concurrent saves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "autotune_cache_" });
  const path = `${dir}/sub/autotune.json`; // the folder does not exist yet
  try {
    assert.notEqual(adapterKey(LLVMPIPE), adapterKey(H200));
    assert.notEqual(adapterKey(H200), adapterKey({ ...H200, driver: "590.1" }));
    const a = await AutotuneCache.open(path);
    assert.equal(a.lookup(LLVMPIPE, "fwd:p"), undefined);
    a.record(LLVMPIPE, "fwd:p", entry("fwd.small", { "fwd.small": 2, "fwd.big": 3 }));
    a.record(H200, "fwd:p", entry("fwd.big", { "fwd.small": 0.5, "fwd.big": 0.1 }));
    await a.save();
    assert.ok((await Deno.stat(path)).isFile);

    // Re-open: one section per adapter, same problem key, different choices.
    const b = await AutotuneCache.open(path);
    assert.equal(b.adapterCount, 2);
    assert.equal(b.lookup(LLVMPIPE, "fwd:p")?.choice, "fwd.small");
    assert.equal(b.lookup(H200, "fwd:p")?.choice, "fwd.big");
    assert.equal(b.lookup({ ...H200, driver: "590.1" }, "fwd:p"), undefined);

    // Two runs that opened the file before either saved: neither drops the other's entry.
    const c = await AutotuneCache.open(path);
    b.record(H200, "bwdData:q", entry("bwdData.x", { "bwdData.x": 1 }));
    c.record(H200, "bwdFilter:r", entry("bwdFilter.y", { "bwdFilter.y": 1 }));
    await b.save();
    await c.save();
    const d = await AutotuneCache.open(path);
    assert.deepEqual(Object.keys(d.entries(H200)).sort(), ["bwdData:q", "bwdFilter:r", "fwd:p"]);

    // A restart: a fresh process finds the file through $FMNIST_AUTOTUNE_CACHE.
    const mod = new URL("./autotune.ts", import.meta.url).href;
    const printed = await inSubprocess(
      `import { AutotuneCache, defaultCachePath } from "${mod}";
       const c = await AutotuneCache.open(defaultCachePath());
       const h = ${JSON.stringify(H200)};
       console.log(defaultCachePath(), c.lookup(h, "fwd:p")?.choice, c.lookup(h, "bwdFilter:r")?.choice);`,
      { FMNIST_AUTOTUNE_CACHE: path },
    );
    assert.equal(printed.trim(), `${path} fwd.big bwdFilter.y`);
    const text = await Deno.readTextFile(path);
    assert.equal(JSON.parse(text).format, CACHE_FORMAT);
    // No temporary file is left beside the cache; the lock file stays (removing it while another
    // process waits on it would let two writers in, see src/shared_json_file.ts).
    const names = [];
    for await (const e of Deno.readDir(`${dir}/sub`)) names.push(e.name);
    assert.deepEqual(names.sort(), ["autotune.json", "autotune.json.lock"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const ZEN5_CPUINFO = `processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512vl

processor\t: 1
model name\t: another block, ignored
`;

Deno.test("autotune cache: a software adapter's key names the CPU (and a forced Vulkan driver)", () => {
  const zen5 = cpuIdentity(ZEN5_CPUINFO, {});
  assert.equal(zen5, "AMD EPYC family 26 model 2 stepping 1 avx512f");
  const avx2 = cpuIdentity(
    ZEN5_CPUINFO.replace("model\t\t: 2", "model\t\t: 1").replace(" avx512f avx512vl", ""),
    {},
  );
  assert.equal(avx2, "AMD EPYC family 26 model 1 stepping 1 avx2");
  const mesa25 = cpuIdentity(ZEN5_CPUINFO, { VK_ICD_FILENAMES: "/opt/mesa-25/lvp_icd.json" });
  assert.equal(mesa25, `${zen5}; vulkan driver /opt/mesa-25/lvp_icd.json`);
  // AVX-512 masked by Mesa (AVX2 code generation on this CPU): its own section as well.
  const masked = cpuIdentity(ZEN5_CPUINFO, { GALLIUM_OVERRIDE_CPU_CAPS: "avx" });
  assert.equal(masked, `${zen5}; GALLIUM_OVERRIDE_CPU_CAPS=avx`);
  assert.equal(
    cpuIdentity(ZEN5_CPUINFO, { GALLIUM_OVERRIDE_CPU_CAPS: "sse4.1" }),
    `${zen5}; GALLIUM_OVERRIDE_CPU_CAPS=sse4.1`,
  );
  // A value Mesa does not know (it compares exactly) masks nothing: the same section as without.
  for (const value of ["avx2", "AVX", "avx512", ""]) {
    assert.equal(cpuIdentity(ZEN5_CPUINFO, { GALLIUM_OVERRIDE_CPU_CAPS: value }), zen5, value);
  }
  // No /proc/cpuinfo (another OS): the OS and architecture still tell machines apart.
  assert.equal(cpuIdentity(null, {}), `${Deno.build.os} ${Deno.build.arch}`);

  // Same llvmpipe description, other CPU, driver or code generation: other cache sections.
  const on = (cpu: string) => adapterIdentity(LLVMPIPE, LLVMPIPE.driver, LLVMPIPE.runtime, cpu);
  const keys = new Set([zen5, avx2, mesa25, masked].map((c) => adapterKey(on(c))));
  assert.equal(keys.size, 4);
  const cache = AutotuneCache.inMemory();
  cache.record(on(zen5), "fwd:p", entry("fwd.big", { "fwd.big": 1, "fwd.small": 2 }));
  assert.equal(cache.lookup(on(zen5), "fwd:p")?.choice, "fwd.big");
  assert.equal(cache.lookup(on(avx2), "fwd:p"), undefined);
  assert.equal(cache.lookup(on(masked), "fwd:p"), undefined);
  // A discrete adapter has no cpu field: its key is what it was before the field existed.
  assert.equal(H200.cpu, undefined);
  assert.equal(adapterKey(H200), "4318|hopper|8997|NVIDIA H200|580.159.04|deno 2.9.6");
});

Deno.test("tile configs: the software default is a row window where it shares taps, else a plain tile", () => {
  const conv = (hw: number, k: number, stride = 1) =>
    convGeometry([128, hw, hw, 32], [k, k, 32, 32], stride, "same");
  for (const view of ["fwd", "bwdData", "bwdFilter"] as const) {
    assert.equal(defaultConfig(view, "software", conv(28, 3)).rowWindow, true, view);
    assert.equal(defaultConfig(view, "software", conv(7, 3)).rowWindow, true, view);
    // Dense layers run as 1x1 convolutions of 1x1 images: nothing to share.
    for (const g of [conv(1, 1), conv(28, 1), conv(6, 3)]) {
      const d = defaultConfig(view, "software", g);
      assert.notEqual(d.rowWindow, true, `${view} ${g.inW}x${g.inW} k${g.kW}`);
      assert.equal(d.id, candidateConfigs(view, "software").find((c) => !c.rowWindow)!.id);
    }
    // Without a shape, the kind's first candidate (what the tables print as the default).
    assert.equal(defaultConfig(view, "software").id, candidateConfigs(view, "software")[0].id);
  }
  // Strided: fwd windows any stride, the backward views only unit column (and dx row) strides.
  assert.equal(rowWindowApplies("fwd", conv(28, 3, 2)), true);
  assert.equal(rowWindowApplies("bwdData", conv(28, 3, 2)), false);
  assert.equal(rowWindowApplies("bwdFilter", conv(28, 3, 2)), false);
  assert.equal(
    defaultConfig("fwd", "discrete", conv(1, 1)).id,
    candidateConfigs("fwd", "discrete")[0].id,
  );
});

Deno.test("autotune cache: a corrupt, stale or unwritable file gives one warning, never a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "autotune_bad_" });
  const path = `${dir}/autotune.json`;
  try {
    const cases: [string, RegExp][] = [
      ['{"format": "fmnist-autotune", "version": 1, "adapters": {', /not valid JSON/],
      ["\u0000\u0001garbage", /not valid JSON/],
      [
        JSON.stringify({ format: "something-else", version: 1, adapters: {} }),
        /not an fmnist-autotune file/,
      ],
      [JSON.stringify([1, 2, 3]), /not an fmnist-autotune file/],
      [
        JSON.stringify({ format: CACHE_FORMAT, version: CACHE_VERSION + 1, adapters: {} }),
        new RegExp(`version ${CACHE_VERSION + 1}, this build reads ${CACHE_VERSION}`),
      ],
      [
        JSON.stringify({ format: CACHE_FORMAT, version: CACHE_VERSION, adapters: 7 }),
        /no adapters/,
      ],
    ];
    for (const [text, pattern] of cases) {
      await Deno.writeTextFile(path, text);
      const { lines, warn } = collector();
      const cache = await AutotuneCache.open(path, warn);
      assert.equal(lines.length, 1, `${text}: ${lines.join(" / ")}`);
      assert.match(lines[0], pattern);
      assert.match(lines[0], new RegExp(`^autotune: ignoring ${path}: `));
      assert.equal(cache.adapterCount, 0);
      // The next save replaces the bad file with a valid one.
      cache.record(LLVMPIPE, "fwd:p", entry("a", { a: 1 }));
      await cache.save(warn);
      assert.equal(lines.length, 1);
      const again = await AutotuneCache.open(path, warn);
      assert.equal(again.lookup(LLVMPIPE, "fwd:p")?.choice, "a");
      assert.equal(lines.length, 1);
    }

    // One malformed entry is dropped (one warning), the rest of the file kept.
    const key = adapterKey(LLVMPIPE);
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        format: CACHE_FORMAT,
        version: CACHE_VERSION,
        adapters: {
          [key]: {
            adapter: LLVMPIPE,
            entries: { good: entry("a", { a: 1, b: null }), bad: { choice: 3, timings: "x" } },
          },
        },
      }),
    );
    const { lines, warn } = collector();
    const partial = await AutotuneCache.open(path, warn);
    assert.deepEqual(Object.keys(partial.entries(LLVMPIPE)), ["good"]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /ignored 1 malformed/);

    // A cache path inside a regular file cannot be written: a warning, and the run goes on.
    await Deno.writeTextFile(`${dir}/file`, "x");
    const blocked = await AutotuneCache.open(`${dir}/file/autotune.json`, warn);
    blocked.record(LLVMPIPE, "fwd:p", entry("a", { a: 1 }));
    await blocked.save(warn);
    assert.equal(lines.length, 3, lines.join("\n")); // the open's read error, then the save's
    assert.match(lines[2], /could not write .*choices not kept/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("autotune: cache path and FMNIST_AUTOTUNE from the environment", () => {
  const saved = Object.fromEntries(
    ["FMNIST_AUTOTUNE_CACHE", "XDG_CACHE_HOME", "HOME", "FMNIST_AUTOTUNE"].map((k) => [
      k,
      Deno.env.get(k),
    ]),
  );
  const set = (k: string, v: string | undefined) =>
    v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  try {
    set("FMNIST_AUTOTUNE_CACHE", undefined);
    set("XDG_CACHE_HOME", "/x/cache");
    set("HOME", "/home/u");
    assert.equal(defaultCachePath(), "/x/cache/fmnist-webgpu/autotune.json");
    set("XDG_CACHE_HOME", undefined);
    assert.equal(defaultCachePath(), "/home/u/.cache/fmnist-webgpu/autotune.json");
    set("FMNIST_AUTOTUNE_CACHE", "/tmp/t.json");
    assert.equal(defaultCachePath(), "/tmp/t.json");
    set("FMNIST_AUTOTUNE", undefined);
    assert.equal(autotuneSetting(), "on");
    set("FMNIST_AUTOTUNE", "OFF");
    assert.equal(autotuneSetting(), "off");
    set("FMNIST_AUTOTUNE", "refresh");
    assert.equal(autotuneSetting(), "refresh");
    set("FMNIST_AUTOTUNE", "fast");
    assert.throws(
      () => autotuneSetting(),
      /^UsageError: FMNIST_AUTOTUNE must be one of on\|off\|refresh, got "fast"$/,
    );
  } finally {
    for (const [k, v] of Object.entries(saved)) set(k, v);
  }
});

interface Fake {
  id: string;
  /** Base cost, ms. */
  cost: number;
  /** Throws on every run (a config that fails to compile). */
  broken?: boolean;
}

/** A deterministic fake clock: cost plus a repeating jitter; every call is logged. */
function fakeClock(jitter: number[] = [0.3, -0.2, 0.1, 5, -0.1]) {
  const calls: string[] = [];
  let n = 0;
  const time = (c: Fake) => {
    calls.push(c.id);
    if (c.broken) return Promise.reject(new Error(`compile error in ${c.id}\nline 2`));
    return Promise.resolve(c.cost + jitter[n++ % jitter.length]);
  };
  return { calls, time };
}

Deno.test("autotune: the fastest median wins, rounds interleave, failures are skipped", async () => {
  const cands: Fake[] = [
    { id: "a", cost: 3 },
    { id: "b", cost: 1 },
    { id: "broken", cost: 0, broken: true },
    { id: "c", cost: 1.5 },
  ];
  const clock = fakeClock();
  const r = await pickFastest(cands, (c) => c.id, clock.time, { warmup: 1, repeats: 3, prune: 0 });
  assert.equal(r.bestId, "b");
  assert.equal(r.best, cands[1]);
  // Warm-up round, then 3 timed rounds, candidate after candidate; a failed one is not retried.
  assert.deepEqual(clock.calls, [
    "a",
    "b",
    "broken",
    "c",
    "a",
    "b",
    "c",
    "a",
    "b",
    "c",
    "a",
    "b",
    "c",
  ]);
  const byId = Object.fromEntries(r.timings.map((t) => [t.id, t]));
  assert.equal(byId.broken.ms, null);
  assert.equal(byId.broken.error, "compile error in broken");
  assert.equal(byId.a.samples.length, 3);
  // Medians of cost + jitter: b saw (+0.1, +5, -0.1) -> median 1.1 despite the 5 ms outlier.
  assert.ok(Math.abs(byId.b.ms! - 1.1) < 1e-9, `${byId.b.ms}`);

  // A candidate over 3x the fastest after the first timed round is timed no more.
  const slow = fakeClock([0]);
  const pruned = await pickFastest(
    [{ id: "fast", cost: 1 }, { id: "slow", cost: 3.5 }, { id: "close", cost: 2.9 }],
    (c) => c.id,
    slow.time,
    { warmup: 1, repeats: 3 },
  );
  assert.deepEqual(slow.calls, [
    "fast",
    "slow",
    "close",
    "fast",
    "slow",
    "close",
    "fast",
    "close",
    "fast",
    "close",
  ]);
  assert.deepEqual(pruned.timings.map((t) => [t.id, t.ms, t.pruned ?? false]), [
    ["fast", 1, false],
    ["slow", 3.5, true],
    ["close", 2.9, false],
  ]);
  const unpruned = fakeClock([0]);
  await pickFastest(
    [{ id: "fast", cost: 1 }, { id: "slow", cost: 9 }],
    (c) => c.id,
    unpruned.time,
    {
      warmup: 0,
      repeats: 2,
      prune: 0,
    },
  );
  assert.equal(unpruned.calls.length, 4);

  // Ties go to the earlier candidate (the default is listed first).
  const tie = await pickFastest(
    [{ id: "x", cost: 2 }, { id: "y", cost: 2 }],
    (c) => c.id,
    fakeClock([0]).time,
    { warmup: 0, repeats: 2 },
  );
  assert.equal(tie.bestId, "x");

  await assert.rejects(
    pickFastest([{ id: "p", cost: 1, broken: true }], (c) => c.id, fakeClock().time, {
      warmup: 0,
      repeats: 1,
    }),
    /every candidate failed \(p: compile error in p\)/,
  );
  await assert.rejects(
    pickFastest([], (c: Fake) => c.id, fakeClock().time, { warmup: 0, repeats: 1 }),
    /no candidates/,
  );
});

Deno.test("autotune: tuneProblem answers from the cache, retunes stale entries and on refresh", async () => {
  const cache = AutotuneCache.inMemory();
  const cands: Fake[] = [{ id: "a", cost: 2 }, { id: "b", cost: 1 }];
  const clock = fakeClock([0]);
  const args = {
    cache,
    adapter: LLVMPIPE,
    problem: "fwd:k3:b128",
    candidates: cands,
    idOf: (c: Fake) => c.id,
    timeOnce: clock.time,
    options: { warmup: 1, repeats: 2 },
    clock: "host-sync",
  };
  const first = await tuneProblem(args);
  assert.equal(first.choice.id, "b");
  assert.equal(first.fromCache, false);
  assert.equal(first.reason, "miss");
  assert.deepEqual(first.entry.timings, { a: 2, b: 1 });
  const timedRuns = clock.calls.length;
  assert.equal(timedRuns, 6);

  const second = await tuneProblem(args);
  assert.equal(second.fromCache, true);
  assert.equal(second.choice, cands[1]);
  assert.equal(clock.calls.length, timedRuns, "a cache hit times nothing");
  // Another adapter does not see this adapter's choice.
  assert.equal((await tuneProblem({ ...args, adapter: H200 })).fromCache, false);

  // A new candidate makes the entry stale: timed again, over the new list.
  const grown = [...cands, { id: "c", cost: 0.5 }];
  const third = await tuneProblem({ ...args, candidates: grown });
  assert.equal(third.reason, "stale");
  assert.equal(third.choice.id, "c");
  // A cached choice that no longer exists is stale too.
  cache.record(LLVMPIPE, "fwd:k3:b128", entry("gone", { a: 1, b: 1, c: 1 }));
  assert.equal((await tuneProblem({ ...args, candidates: grown })).reason, "stale");
  const refreshed = await tuneProblem({ ...args, candidates: grown, refresh: true });
  assert.equal(refreshed.reason, "refresh");
  assert.equal(refreshed.fromCache, false);
});

const GPU = await probeAdapter();
if (!GPU) console.log("autotune_test: no WebGPU adapter: the real-tuning test is ignored");

/** Runs `f` with env vars set, restoring them after. */
async function withEnv<T>(vars: Record<string, string>, f: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await f();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
  }
}

Deno.test({
  name:
    "autotune on the WebGPU adapter: real candidates timed, fastest installed, cached, model layers found",
  ignore: !GPU,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await initTf("webgpu");
    tf.env().set("WEBGPU_CPU_FORWARD", false);
    const dir = await Deno.makeTempDir({ prefix: "autotune_gpu_" });
    const path = `${dir}/autotune.json`;
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    try {
      await withEnv({ FMNIST_AUTOTUNE_CACHE: path, FMNIST_AUTOTUNE: "on" }, async () => {
        const session = (await openTuneSession())!;
        assert.ok(session, "a WebGPU adapter has an identity");
        const kind = backendAdapterKind(tf.backend());
        // Two tiny layers, training batch 3 (bucket 4) and an inference batch 5 (bucket 8): a
        // conv+BN+ReLU model-input layer (no dx), a conv+bias+ReLU stride-2 layer with dx, so
        // every view and every kind of work.
        const l1: ConvLayer = {
          name: "a",
          op: "bn-relu",
          h: 8,
          w: 8,
          cin: 1,
          cout: 4,
          kh: 3,
          kw: 3,
          stride: 1,
          pad: "same",
        };
        const l2: ConvLayer = {
          name: "b",
          op: "bias-relu",
          h: 7,
          w: 7,
          cin: 4,
          cout: 8,
          kh: 3,
          kw: 3,
          stride: 2,
          pad: "valid",
        };
        const problems = convProblems(
          [{ layer: l1, needsDx: false }, { layer: l2, needsDx: true }],
          3,
          5,
        );
        assert.deepEqual(
          problems.map((p) => `${p.view}/${p.work}/${p.layer.name}`),
          [
            "fwd/train-fwd/a",
            "bwdFilter/bwd-filter/a",
            "fwd/infer/a",
            "fwd/bias-fwd/b",
            "bwdFilter/bwd-filter-plain/b",
            "bwdData/bwd-data/b",
            "fwd/bias-fwd/b",
          ],
        );
        const tensors = tf.memory().numTensors;
        const rows = await tuneConvProblems(problems, {
          ...session,
          setting: "on",
          timing: { warmup: 1, repeats: 2 },
          log,
        });
        assert.equal(tf.memory().numTensors, tensors, "tuning leaks no tensor");
        assert.equal(rows.length, problems.length);
        const tuned = cachedTilePlan(session);
        for (const r of rows) {
          const g = layerGeometry(r.problem.layer, r.problem.batch);
          const ids = Object.keys(r.timings);
          assert.equal(r.source, "tuned");
          // Every candidate, the dispatch's default for the shape first.
          assert.deepEqual(
            [...ids].sort(),
            candidateConfigs(r.problem.view, kind).map((c) => c.id).sort(),
            r.problem.key,
          );
          assert.equal(ids[0], defaultConfig(r.problem.view, kind, g).id);
          // Every candidate runs but the Winograd ones on a layer they do not serve (l2: stride
          // 2), which are recorded as failed without running; l1 (3x3, stride 1) times them.
          const skipped = candidateConfigs(r.problem.view, kind)
            .filter((c) => c.winograd && !winogradApplies(g)).map((c) => c.id);
          if (r.problem.layer.name === "a") assert.deepEqual(skipped, []);
          else assert.ok(skipped.length > 0, `${r.problem.key}: Winograd candidates skipped`);
          assert.deepEqual(Object.keys(r.errors).sort(), [...skipped].sort(), r.problem.key);
          for (const id of skipped) {
            assert.equal(r.timings[id], null);
            assert.match(r.errors[id], /3x3 stride-1/);
          }
          const ran = ids.filter((id) => !skipped.includes(id));
          const ms = ran.map((id) => r.timings[id]!);
          for (const t of ms) assert.ok(t > 0 && Number.isFinite(t), `${r.problem.key}: ${ms}`);
          assert.equal(r.choice, ran[ms.indexOf(Math.min(...ms))], "the fastest median wins");
          // The plan built from the cache gives the dispatch the choice.
          assert.equal(tileConfigFor(tuned, r.problem.view, g).id, r.choice);
        }
        assert.equal(logs.filter((l) => l.startsWith("autotune: ")).length, problems.length);

        // A restart (a new session on the same file) answers every problem from the cache.
        const again = await openTuneSession();
        assert.equal(cachedConvTable(again!.cache, again!.adapter, kind).size, problems.length);
        const logged = logs.length;
        const cached = await tuneConvProblems(problems, { ...again!, setting: "on", log });
        assert.ok(cached.every((r, i) => r.source === "cache" && r.choice === rows[i].choice));
        assert.equal(logs.length, logged, "a cache hit times (and logs) nothing");

        // Off: the built-in default for this adapter kind, which a plan without a table gives.
        const off = await tuneConvProblems(problems, { ...again!, setting: "off" });
        for (const r of off) {
          assert.equal(r.source, "default");
          const g = layerGeometry(r.problem.layer, r.problem.batch);
          assert.equal(r.choice, defaultConfig(r.problem.view, kind, g).id);
          assert.equal(tileConfigFor(tilePlan(kind), r.problem.view, g).id, r.choice);
        }

        // The enhanced CNN's layers from its architecture, and exactly what a training step
        // dispatches (the profiled oracle).
        const layers = convLayersOf(architecture("enhanced"));
        assert.deepEqual(layers, await dispatchedConvLayers("enhanced"));
        assert.deepEqual(
          layers.map((d) =>
            `${d.layer.h}x${d.layer.w}x${d.layer.cin}->${d.layer.cout} k${d.layer.kh} s${d.layer.stride} ${d.layer.pad} dx=${d.needsDx}`
          ),
          [
            "28x28x1->32 k3 s1 same dx=false",
            "28x28x32->32 k3 s1 same dx=true",
            "14x14x32->64 k3 s1 same dx=true",
            "14x14x64->64 k3 s1 same dx=true",
          ],
        );
        const baseline = convLayersOf(architecture("baseline"));
        assert.deepEqual(baseline, await dispatchedConvLayers("baseline"));
        assert.deepEqual(
          baseline.map((d) =>
            `${d.layer.op} ${d.layer.h}x${d.layer.w}x${d.layer.cin}->${d.layer.cout} ${d.layer.pad} dx=${d.needsDx}`
          ),
          ["bias-relu 28x28x1->32 valid dx=false", "bias-relu 13x13x32->64 valid dx=true"],
        );
        // The training hook: a short run uses the cache only; off says so; stock ops skip it.
        const base = {
          model: "enhanced",
          ops: "fused",
          backend: "webgpu",
          batch: 3,
          evalBatch: null,
          log,
        } as const;
        logs.length = 0;
        const short = await autotuneForTraining({ ...base, steps: MIN_STEPS_TO_TUNE - 1 });
        assert.deepEqual(short.rows, []);
        assert.equal(short.tiles?.conv.size, problems.length, "the cached choices, in the plan");
        assert.match(
          logs.join("\n"),
          /^autotune: short run \(99 steps\): \d+ cached choice\(s\) from .*autotune\.json, no timing$/,
        );
        logs.length = 0;
        const off1000 = await autotuneForTraining({ ...base, steps: 1000, setting: "off" });
        assert.deepEqual(off1000.rows, []);
        assert.equal(off1000.tiles?.conv.size, 0, "tuning off: the built-in configs");
        assert.equal(off1000.tiles?.kind, kind);
        assert.match(
          logs[0],
          /^autotune: off: built-in tile configs for (software|discrete) adapters$/,
        );
        const stock = await autotuneForTraining({ ...base, ops: "stock", steps: 1000 });
        assert.deepEqual(stock, { rows: [], tiles: undefined });
        // A long enough run tunes the model's 11 problems once; the next run reads them back.
        logs.length = 0;
        const first = await autotuneForTraining({ ...base, steps: MIN_STEPS_TO_TUNE });
        assert.deepEqual(
          first.rows.map((r) => `${r.problem.layer.name} ${r.problem.view} ${r.source}`),
          ["conv1", "conv2", "conv3", "conv4"].flatMap((
            n,
          ) => [
            `${n} fwd tuned`,
            `${n} bwdFilter tuned`,
            ...(n === "conv1" ? [] : [`${n} bwdData tuned`]),
          ]),
        );
        assert.match(logs[0], /^autotune: timing 11 of 11 conv problems on /);
        for (const r of first.rows) {
          const g = layerGeometry(r.problem.layer, r.problem.batch);
          assert.equal(tileConfigFor(first.tiles!, r.problem.view, g).id, r.choice, r.problem.key);
        }
        const second = await autotuneForTraining({ ...base, steps: MIN_STEPS_TO_TUNE });
        assert.ok(
          second.rows.every((r, i) => r.source === "cache" && r.choice === first.rows[i].choice),
        );
        assert.match(logs.at(-1)!, /^autotune: 11 conv problems, 11 from the cache: conv1 fwd b3 /);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
