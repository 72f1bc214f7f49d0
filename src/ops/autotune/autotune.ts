// Autotuning core: time a short list of candidate configurations of a kernel on the current
// adapter, keep the fastest, and remember the choice per adapter in a JSON cache file so that
// later runs start at once.
//
// Generic on purpose: a problem is an opaque string key (the conv glue in autotune_conv.ts
// builds "view|shape class|batch bucket"), a candidate is anything with a stable string id, and
// a measurement is a function returning milliseconds. Nothing here knows about convolutions or
// tfjs, so the selection logic and the cache are tested with fake candidates and a fake clock.
//
import { type AutotuneSetting, readFlag } from "../../flags.ts";
import { loadedMesaVersion } from "../../tf/driver_info.ts";
import { updateSharedFile } from "../../shared_json_file.ts";
import { median } from "../../stats.ts";
export type { AutotuneSetting };
import { adapterKindOf } from "../conv/tiling.ts";

// Cache file (JSON, written atomically: temp file + rename, merged with what is on disk under an
// flock on <file>.lock (src/shared_json_file.ts), so runs saving at once keep each other's entries):
//   { format: "fmnist-autotune", version: 1,
//     adapters: { "<adapter key>": { adapter: {...}, entries: { "<problem>": Entry } } } }
// A file that is not valid JSON, or has another format/version, is ignored with a one-line
// warning and replaced on the next save. An entry whose candidate list differs from today's
// (a configuration was added, renamed or removed) is stale and tuned again.

/** What identifies an adapter for tuning purposes: same identity, same best configuration. */
export interface AdapterIdentity {
  vendor: string;
  architecture: string;
  /** PCI device id or similar, as GPUAdapterInfo.device gives it ("0" on llvmpipe). */
  device: string;
  /** "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Driver version where the platform tells it (GPUAdapterInfo has none in Deno), else "". */
  driver: string;
  /** The runtime whose shader compiler (naga, in Deno) turns WGSL into the driver's code. */
  runtime: string;
  /**
   * Software adapters only (else "" or absent): the CPU that runs the kernels and the Vulkan
   * driver file when one is forced, e.g. "AMD EPYC family 26 model 2 stepping 1 avx512f".
   * llvmpipe's description names neither, and the best tile differs between CPUs (16 vs 32
   * vector registers, gather and load costs) and between Mesa releases.
   */
  cpu?: string;
}

export const CACHE_FORMAT = "fmnist-autotune";
export const CACHE_VERSION = 1;

/** One tuned problem on one adapter. */
export interface CacheEntry {
  /** Id of the fastest candidate. */
  choice: string;
  /** Median ms per candidate id; null for a candidate that failed (compile error, ...). */
  timings: Record<string, number | null>;
  /** "gpu-timestamp" or "host-sync": which clock the timings come from. */
  clock: string;
  /** ISO 8601 date of the measurement. */
  date: string;
}

interface AdapterSection {
  adapter: AdapterIdentity;
  entries: Record<string, CacheEntry>;
}

interface CacheFile {
  format: typeof CACHE_FORMAT;
  version: typeof CACHE_VERSION;
  adapters: Record<string, AdapterSection>;
}

/** One stable string per adapter identity (the cache's key). */
export function adapterKey(a: AdapterIdentity): string {
  // The cpu field only where it is set: keys of discrete adapters stay what they were.
  return [
    a.vendor,
    a.architecture,
    a.device,
    a.description,
    a.driver,
    a.runtime,
    ...(a.cpu ? [a.cpu] : []),
  ]
    .map((s) => s.replaceAll("|", "/"))
    .join("|");
}

type Warn = (line: string) => void;

/**
 * Where the cache lives: $FMNIST_AUTOTUNE_CACHE (a file path; tests and GPU runs set it), else
 * $XDG_CACHE_HOME/fmnist-webgpu/autotune.json, else ~/.cache/fmnist-webgpu/autotune.json; null
 * when none of these can be read (no --allow-env, no HOME): tuning then lasts one run.
 */
export function defaultCachePath(): string | null {
  try {
    const explicit = readFlag("FMNIST_AUTOTUNE_CACHE");
    if (explicit) return explicit;
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    if (xdg) return `${xdg}/fmnist-webgpu/autotune.json`;
    const home = Deno.env.get("HOME");
    return home ? `${home}/.cache/fmnist-webgpu/autotune.json` : null;
  } catch {
    return null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function validEntry(e: unknown): e is CacheEntry {
  if (!isObject(e) || typeof e.choice !== "string" || !isObject(e.timings)) return false;
  if (typeof e.clock !== "string" || typeof e.date !== "string") return false;
  return Object.values(e.timings).every((t) => t === null || typeof t === "number");
}

/**
 * Parses a cache file's text. Returns the sections, or a reason why the whole file is unusable.
 * Malformed single entries are dropped (and counted), not fatal.
 */
export function parseCacheFile(
  text: string,
): { adapters: Record<string, AdapterSection>; dropped: number } | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { error: "not valid JSON" };
  }
  if (!isObject(raw) || raw.format !== CACHE_FORMAT) {
    return { error: `not an ${CACHE_FORMAT} file` };
  }
  if (raw.version !== CACHE_VERSION) {
    return { error: `version ${JSON.stringify(raw.version)}, this build reads ${CACHE_VERSION}` };
  }
  if (!isObject(raw.adapters)) return { error: "no adapters object" };
  const adapters: Record<string, AdapterSection> = {};
  let dropped = 0;
  for (const [key, section] of Object.entries(raw.adapters)) {
    if (!isObject(section) || !isObject(section.adapter) || !isObject(section.entries)) {
      dropped++;
      continue;
    }
    const entries: Record<string, CacheEntry> = {};
    for (const [problem, e] of Object.entries(section.entries)) {
      if (validEntry(e)) entries[problem] = e;
      else dropped++;
    }
    adapters[key] = { adapter: section.adapter as unknown as AdapterIdentity, entries };
  }
  return { adapters, dropped };
}

/** The tuning choices of every adapter seen, backed by one JSON file (or by memory only). */
export class AutotuneCache {
  #adapters: Record<string, AdapterSection>;
  /** Problems recorded since the last load/save, per adapter key. */
  #dirty = new Map<string, Set<string>>();

  private constructor(readonly path: string | null, adapters: Record<string, AdapterSection>) {
    this.#adapters = adapters;
  }

  /** An empty cache that is never written (FMNIST_AUTOTUNE=off, or no cache folder). */
  static inMemory(): AutotuneCache {
    return new AutotuneCache(null, {});
  }

  /**
   * Reads the cache at `path` (missing: empty). A corrupt or stale file gives one warning line
   * and an empty cache; nothing throws except a programming error.
   */
  static async open(path: string | null, warn: Warn = console.warn): Promise<AutotuneCache> {
    if (path === null) return AutotuneCache.inMemory();
    return new AutotuneCache(path, await readSections(path, warn));
  }

  /** The stored entry for `problem` on `adapter`, if any. */
  lookup(adapter: AdapterIdentity, problem: string): CacheEntry | undefined {
    return this.#adapters[adapterKey(adapter)]?.entries[problem];
  }

  /** Every entry stored for `adapter` (problem -> entry). */
  entries(adapter: AdapterIdentity): Record<string, CacheEntry> {
    return { ...(this.#adapters[adapterKey(adapter)]?.entries ?? {}) };
  }

  /** Number of adapters with at least one entry. */
  get adapterCount(): number {
    return Object.keys(this.#adapters).length;
  }

  record(adapter: AdapterIdentity, problem: string, entry: CacheEntry): void {
    const key = adapterKey(adapter);
    const section = this.#adapters[key] ??= { adapter: { ...adapter }, entries: {} };
    section.entries[problem] = entry;
    let dirty = this.#dirty.get(key);
    if (!dirty) this.#dirty.set(key, dirty = new Set());
    dirty.add(problem);
  }

  /**
   * Writes the entries recorded since opening, merged into the file as it is on disk now (so
   * that another run's entries survive), atomically. A failure to write is a warning: tuning
   * results only cost time to get again.
   */
  async save(warn: Warn = console.warn): Promise<void> {
    if (this.path === null || this.#dirty.size === 0) return;
    const path = this.path;
    let merged: Record<string, AdapterSection> = {};
    try {
      // Under the file's lock: several trials of a job array may save at once.
      await updateSharedFile(path, (text) => {
        merged = text === null ? {} : sectionsOf(text, path, () => {});
        for (const [key, problems] of this.#dirty) {
          const mine = this.#adapters[key];
          const section = merged[key] ??= { adapter: mine.adapter, entries: {} };
          for (const p of problems) section.entries[p] = mine.entries[p];
        }
        const file: CacheFile = { format: CACHE_FORMAT, version: CACHE_VERSION, adapters: merged };
        return JSON.stringify(file, null, 1) + "\n";
      });
      this.#adapters = merged;
      this.#dirty.clear();
    } catch (e) {
      warn(`autotune: could not write ${path} (${(e as Error).message}); choices not kept`);
    }
  }
}

async function readSections(path: string, warn: Warn): Promise<Record<string, AdapterSection>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      warn(`autotune: ignoring ${path}: ${(e as Error).message}`);
    }
    return {};
  }
  return sectionsOf(text, path, warn);
}

function sectionsOf(text: string, path: string, warn: Warn): Record<string, AdapterSection> {
  const parsed = parseCacheFile(text);
  if ("error" in parsed) {
    warn(`autotune: ignoring ${path}: ${parsed.error} (it will be rewritten)`);
    return {};
  }
  if (parsed.dropped > 0) {
    warn(`autotune: ${path}: ignored ${parsed.dropped} malformed entr(y/ies)`);
  }
  return parsed.adapters;
}

// ---------------------------------------------------------------------------------------------
// Picking the fastest candidate

export interface TuneOptions {
  /** Untimed runs per candidate first (shader compilation, buffer pools). */
  warmup: number;
  /** Timed runs per candidate; the figure is their median. */
  repeats: number;
  /**
   * After the first timed round, drop candidates slower than this many times the fastest: they
   * cannot win, and on a software adapter each of their runs costs seconds. Default 3; 0: never.
   */
  prune?: number;
}

export interface CandidateTiming {
  id: string;
  /** Median ms, or null when the candidate failed. */
  ms: number | null;
  samples: number[];
  error?: string;
  /** Timed once only: its first run was over `prune` times the fastest. */
  pruned?: boolean;
}

export interface TuneOutcome<C> {
  best: C;
  bestId: string;
  timings: CandidateTiming[];
}

/**
 * Times every candidate and returns the fastest by median. Rounds are interleaved (candidate
 * A, B, C, then A, B, C again) so that a slow spell of a shared machine hits all of them alike.
 * A candidate that throws is recorded as failed and left out; one far slower than the best
 * after the first round is pruned (see TuneOptions.prune); ties go to the earlier candidate
 * (list the default first). Throws only when every candidate failed.
 */
export async function pickFastest<C>(
  candidates: readonly C[],
  idOf: (c: C) => string,
  timeOnce: (c: C) => Promise<number>,
  opts: TuneOptions,
): Promise<TuneOutcome<C>> {
  if (candidates.length === 0) throw new Error("autotune: no candidates");
  const rows = candidates.map((c) => ({
    c,
    id: idOf(c),
    samples: [] as number[],
    error: "",
    pruned: false,
  }));
  const run = async (r: (typeof rows)[number]) => {
    if (r.error || r.pruned) return null;
    try {
      const ms = await timeOnce(r.c);
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`bad time ${ms}`);
      return ms;
    } catch (e) {
      r.error = (e as Error).message.split("\n")[0];
      return null;
    }
  };
  for (let i = 0; i < opts.warmup; i++) for (const r of rows) await run(r);
  const prune = opts.prune ?? 3;
  for (let i = 0; i < Math.max(1, opts.repeats); i++) {
    for (const r of rows) {
      const ms = await run(r);
      if (ms !== null) r.samples.push(ms);
    }
    if (i === 0 && prune > 0) {
      const fastest = Math.min(...rows.filter((r) => !r.error).map((r) => r.samples[0]));
      for (const r of rows) if (!r.error && r.samples[0] > prune * fastest) r.pruned = true;
    }
  }
  const timings: CandidateTiming[] = rows.map((r) => ({
    id: r.id,
    ms: r.error ? null : median(r.samples),
    samples: r.samples,
    ...(r.error ? { error: r.error } : {}),
    ...(r.pruned ? { pruned: true } : {}),
  }));
  let best = -1;
  timings.forEach((t, i) => {
    if (t.ms !== null && (best < 0 || t.ms < timings[best].ms!)) best = i;
  });
  if (best < 0) {
    throw new Error(
      `autotune: every candidate failed (${timings.map((t) => `${t.id}: ${t.error}`).join("; ")})`,
    );
  }
  return { best: rows[best].c, bestId: rows[best].id, timings };
}

/** True when `entry` was tuned over exactly these candidate ids (else it is stale). */
export function entryMatches(entry: CacheEntry, ids: readonly string[]): boolean {
  const stored = Object.keys(entry.timings);
  return stored.length === ids.length && ids.every((id) => id in entry.timings) &&
    ids.includes(entry.choice);
}

/** A cache entry from a tuning outcome. */
export function entryFrom(outcome: TuneOutcome<unknown>, clock: string): CacheEntry {
  return {
    choice: outcome.bestId,
    timings: Object.fromEntries(outcome.timings.map((t) => [t.id, t.ms])),
    clock,
    date: new Date().toISOString(),
  };
}

export interface TunedChoice<C> {
  choice: C;
  entry: CacheEntry;
  /** True when the cache answered and nothing was timed. */
  fromCache: boolean;
  /** Why the cache did not answer: "miss", "stale" (candidates changed) or "refresh". */
  reason?: "miss" | "stale" | "refresh";
}

/**
 * The configuration for `problem` on `adapter`: the cached choice when the cache holds an entry
 * over today's candidates, else the fastest by timing (recorded in the cache; `save` it after).
 */
export async function tuneProblem<C>(args: {
  cache: AutotuneCache;
  adapter: AdapterIdentity;
  problem: string;
  candidates: readonly C[];
  idOf: (c: C) => string;
  timeOnce: (c: C) => Promise<number>;
  options: TuneOptions;
  clock: string;
  refresh?: boolean;
}): Promise<TunedChoice<C>> {
  const ids = args.candidates.map(args.idOf);
  const cached = args.cache.lookup(args.adapter, args.problem);
  if (cached && !args.refresh && entryMatches(cached, ids)) {
    const choice = args.candidates[ids.indexOf(cached.choice)];
    return { choice, entry: cached, fromCache: true };
  }
  const reason = args.refresh ? "refresh" : cached ? "stale" : "miss";
  const outcome = await pickFastest(args.candidates, args.idOf, args.timeOnce, args.options);
  const entry = entryFrom(outcome, args.clock);
  args.cache.record(args.adapter, args.problem, entry);
  return { choice: outcome.best, entry, fromCache: false, reason };
}

// ---------------------------------------------------------------------------------------------
// The current adapter's identity

/** GPUAdapterInfo's fields as Deno gives them (no driver version among them). */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}

/** The identity of an adapter from its info and a driver version probed elsewhere. */
export function adapterIdentity(
  info: AdapterInfoLike,
  driver = "",
  runtime = "",
  cpu = "",
): AdapterIdentity {
  return {
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    driver,
    runtime,
    ...(cpu ? { cpu } : {}),
  };
}

/**
 * The x86 levels Mesa's GALLIUM_OVERRIDE_CPU_CAPS accepts (util/u_cpu_detect.c, exact match),
 * each clearing that extension's successors: "avx" clears AVX-512 and keeps AVX2/FMA, so LLVM
 * emits the code an AVX2-only CPU gets (read from a running lavapipe kernel's machine code on the
 * Zen 5: ymm16-31 natively, none under "avx"; BENCHMARKS.md, "AVX2 code generation (emulated)").
 */
const MESA_CPU_OVERRIDES = ["nosse", "sse", "sse2", "sse3", "ssse3", "sse4.1", "avx"];

/** The widest x86 SIMD extension among /proc/cpuinfo's flags, or "". */
function simdLevel(flags: string[]): string {
  return ["avx512f", "avx2", "avx", "sse4_2"].find((f) => flags.includes(f)) ?? "";
}

/**
 * What a software adapter runs on, from /proc/cpuinfo's first processor block: model name,
 * family/model/stepping and the widest SIMD level ("AMD EPYC family 26 model 2 stepping 1
 * avx512f"), plus the Vulkan driver file when VK_ICD_FILENAMES / VK_DRIVER_FILES forces one
 * (two Mesa releases on one machine report the same llvmpipe description) and
 * GALLIUM_OVERRIDE_CPU_CAPS when set. Elsewhere the OS and architecture. Pure: `cpuinfo` and
 * `env` are passed in (probeCpuIdentity reads them).
 */
export function cpuIdentity(cpuinfo: string | null, env: Record<string, string | undefined>) {
  let cpu = `${Deno.build.os} ${Deno.build.arch}`;
  if (cpuinfo) {
    const block = cpuinfo.split(/\n\s*\n/)[0];
    const field = (name: string) =>
      block.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, "m"))?.[1].trim() ?? "";
    const parts = [
      field("model name"),
      ...["cpu family", "model", "stepping"].map((f) => {
        const v = field(f);
        return v ? `${f.replace("cpu ", "")} ${v}` : "";
      }),
      simdLevel(field("flags").split(/\s+/)),
    ].filter(Boolean);
    if (parts.length > 0) cpu = parts.join(" ");
  }
  const icd = env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES;
  if (icd) cpu = `${cpu}; vulkan driver ${icd}`;
  // Mesa masks CPU features with it ("avx": AVX2 code on an AVX-512 CPU), and the fastest tiles
  // differ between the two code generations (BENCHMARKS.md). Values Mesa ignores change nothing.
  const override = env.GALLIUM_OVERRIDE_CPU_CAPS ?? "";
  return MESA_CPU_OVERRIDES.includes(override)
    ? `${cpu}; GALLIUM_OVERRIDE_CPU_CAPS=${override}`
    : cpu;
}

/** cpuIdentity of this machine (no --allow-read / --allow-env: what is readable). */
export function probeCpuIdentity(): string {
  let cpuinfo: string | null = null;
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    // not Linux, or no --allow-read
  }
  const env: Record<string, string | undefined> = {};
  for (const name of ["VK_ICD_FILENAMES", "VK_DRIVER_FILES", "GALLIUM_OVERRIDE_CPU_CAPS"]) {
    try {
      env[name] = Deno.env.get(name);
    } catch {
      // no --allow-env
    }
  }
  return cpuIdentity(cpuinfo, env);
}

/**
 * The driver version where Linux tells it: NVIDIA's kernel module version (e.g. "580.159.04"),
 * else the Mesa release of the loaded Vulkan driver ("Mesa 25.0.7-2~bpo12+1"). "" otherwise.
 */
export function probeDriverVersion(): string {
  for (const path of ["/sys/module/nvidia/version", "/proc/driver/nvidia/version"]) {
    try {
      const text = Deno.readTextFileSync(path).trim();
      const m = text.match(/\b(\d+\.\d+(?:\.\d+)?)\b/);
      if (m) return m[1];
    } catch {
      // not there, or no --allow-read: try the next
    }
  }
  // Mesa's lavapipe 25.0 and 22.3 print the same description but time configs differently.
  return loadedMesaVersion();
}

/**
 * The identity of the adapter that tfjs-webgpu gets (it asks for high-performance too), or null
 * without WebGPU. The runtime is Deno's version: its WGSL compiler changes what a config costs.
 */
export async function probeAdapterIdentity(): Promise<AdapterIdentity | null> {
  if (!("gpu" in navigator) || !navigator.gpu) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const software = adapterKindOf({ ...info, isFallback: info.isFallbackAdapter }) === "software";
  return adapterIdentity(
    info,
    probeDriverVersion(),
    `deno ${Deno.version.deno}`,
    software ? probeCpuIdentity() : "",
  );
}
