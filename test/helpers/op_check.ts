// Shared pieces of the conv-op tests (forward, gradients, every tile configuration; GPU_TEST and
// withGpu serve every GPU kernel test):
//   - ConvCase and its fast-check arbitrary (random NHWC shapes, kernels, strides, padding);
//   - seeded data (mulberry32), so a failing case can be rebuilt from its printed seed;
//   - withGpu: webgpu backend, tiny ops kept on the GPU, outputs poisoned with NaN (an element a
//     kernel fails to write then mismatches instead of showing a stale pooled buffer), a WebGPU
//     validation error scope (an invalid shader dispatches nothing and its read-back may hold a
//     stale right answer, so a compile error must fail by itself), and every flag restored;
//   - checkOp: one comparison of named outputs with stated tolerances, all failures in one error;
//   - the tile-configuration dimension: every candidate of every view (conv/tiling.ts).

import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { initTf } from "../../src/tf/setup.ts";
import { Rng } from "../../src/random.ts";
import { setPoisonOutputs } from "../../src/ops/backend/webgpu_program.ts";
import { readFlag, withFlags } from "../../src/flags.ts";
import {
  allConfigs,
  CONV_VIEWS,
  type ConvView,
  type TileConfig,
} from "../../src/ops/conv/tiling.ts";
import { defaultTilePlan, pinTileConfig, type TilePlan } from "../../src/ops/conv/tile_plan.ts";
import { compareArrays, relL2, type Tolerance } from "./compare.ts";

/** Deno.test options for GPU tests: the webgpu backend keeps buffers and timers across tests. */
export const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };
/** FMNIST_SOAK=1: many more random cases (long runs, not CI). */
export const SOAK = readFlag("FMNIST_SOAK") === "1";
/** Run count: `quick` in CI, 10x under FMNIST_SOAK=1. */
export const runs = (quick: number): number => (SOAK ? quick * 10 : quick);

// A conv layer as src/ops/autotune/autotune_conv.ts's ConvLayer describes one, plus what a test
// case needs: a batch, per-axis strides and a seed.
export interface ConvCase {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  strides: [number, number];
  pad: "same" | "valid";
  seed: number;
  /** The tile configuration pinned for its view, over `plan` (else the adapter's defaults). */
  config?: TileConfig;
  /** The plan the case's ops run under (the browser's, say); default: the adapter's. */
  plan?: TilePlan;
}

/**
 * A fixed case in one line: x [n, h, w, cin], a k x k (or [kh, kw]) filter to `cout` channels,
 * stride 1 and `same` unless given.
 */
export function fixedCase(p: {
  x: [number, number, number, number];
  k: number | [number, number];
  cout: number;
  seed: number;
  strides?: [number, number];
  pad?: "same" | "valid";
}): ConvCase {
  const [n, h, w, cin] = p.x;
  const [kh, kw] = typeof p.k === "number" ? [p.k, p.k] : p.k;
  const { cout, seed, strides = [1, 1], pad = "same" } = p;
  return { n, h, w, cin, cout, kh, kw, strides, pad, seed };
}

export const CHANNELS = [1, 3, 4, 5, 8, 17];
export const KERNELS = [1, 3, 5];

/**
 * Batch 1..4, H, W 1..9 (up to 16 along a stride-2 axis, so several output rows exist),
 * channels from `channels`, kernels 1/3/5 square or rectangular, strides 1/2 per axis,
 * same/valid. `valid` cases grow H, W to fit the kernel (tfjs rejects an empty output).
 */
export function convCaseArb(channels: number[] = CHANNELS): fc.Arbitrary<ConvCase> {
  return fc.record({
    n: fc.integer({ min: 1, max: 4 }),
    h: fc.integer({ min: 1, max: 9 }),
    w: fc.integer({ min: 1, max: 9 }),
    extraH: fc.integer({ min: 0, max: 7 }),
    extraW: fc.integer({ min: 0, max: 7 }),
    cin: fc.constantFrom(...channels),
    cout: fc.constantFrom(...channels),
    kh: fc.constantFrom(...KERNELS),
    kw: fc.constantFrom(...KERNELS),
    sh: fc.constantFrom(1, 2),
    sw: fc.constantFrom(1, 2),
    pad: fc.constantFrom("same" as const, "valid" as const),
    seed: fc.integer({ min: 1, max: 2 ** 30 }),
  }).map((r) => {
    let h = r.h + (r.sh === 2 ? r.extraH : 0);
    let w = r.w + (r.sw === 2 ? r.extraW : 0);
    if (r.pad === "valid") {
      h = Math.max(h, r.kh);
      w = Math.max(w, r.kw);
    }
    return {
      n: r.n,
      h,
      w,
      cin: r.cin,
      cout: r.cout,
      kh: r.kh,
      kw: r.kw,
      strides: [r.sh, r.sw] as [number, number],
      pad: r.pad,
      seed: r.seed,
    };
  });
}

export function describeCase(c: ConvCase): string {
  return `x=[${c.n},${c.h},${c.w},${c.cin}] w=[${c.kh},${c.kw},${c.cin},${c.cout}] ` +
    `strides=[${c.strides}] pad=${c.pad} seed=${c.seed}`;
}

/** `n` seeded values, uniform in [lo, hi) (src/random.ts's Rng). */
export function seededUniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
}

export interface GpuOptions {
  /** Run the naive oracle kernels (the FMNIST_NAIVE_KERNELS flag). */
  naive?: boolean;
}

/**
 * Runs `f` on webgpu with WEBGPU_CPU_FORWARD off, poisoned outputs and a validation error
 * scope; restores the flags (and the naive-kernel flag) whatever happens; throws on a
 * validation error.
 */
export async function withGpu<T>(f: () => Promise<T>, opts: GpuOptions = {}): Promise<T> {
  await initTf("webgpu");
  const env = tf.env();
  const prevForward = env.getBool("WEBGPU_CPU_FORWARD");
  env.set("WEBGPU_CPU_FORWARD", false);
  setPoisonOutputs(true);
  const device = (tf.backend() as WebGPUBackend).device;
  device.pushErrorScope("validation");
  let result: T;
  try {
    result = await withFlags({ FMNIST_NAIVE_KERNELS: opts.naive ? "1" : undefined }, f);
  } finally {
    setPoisonOutputs(false);
    env.set("WEBGPU_CPU_FORWARD", prevForward);
  }
  const error = await device.popErrorScope();
  if (error) throw new Error(`WebGPU validation error: ${error.message}`);
  return result;
}

/** Registers a GPU test: `fn` inside withGpu. */
export function gpuTest(name: string, fn: () => Promise<void>, opts: GpuOptions = {}): void {
  Deno.test({ name, ...GPU_TEST, fn: () => withGpu(fn, opts) });
}

/**
 * Registers a GPU property test: `check` on every value of `arb`, inside withGpu (fast-check,
 * seeded; `examples` run first and count within numRuns).
 */
export function gpuPropertyTest<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => Promise<void>,
  opts: { seed: number; numRuns: number; examples?: [T][]; naive?: boolean },
): void {
  const { naive, ...params } = opts;
  Deno.test({
    name,
    ...GPU_TEST,
    fn: () => withGpu(() => fc.assert(fc.asyncProperty(arb, check), params), { naive }),
  });
}

/**
 * Registers a property test on the cpu backend (the CPU kernels, or a reference against tfjs's
 * stock ops): `check` on every value of `arb`.
 */
export function cpuPropertyTest<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => Promise<void>,
  opts: { seed: number; numRuns: number },
): void {
  Deno.test({
    name,
    ...GPU_TEST,
    fn: async () => {
      await initTf("cpu");
      await fc.assert(fc.asyncProperty(arb, check), opts);
    },
  });
}

/**
 * f(...inputs) and tf.grads of sum(f(...inputs) * dy) with respect to every input, read back
 * ([y, ...grads]) on the current backend; disposes what it made (not `inputs` or `dy`).
 */
export async function outputAndGrads<T extends tf.Tensor[]>(
  f: (...xs: T) => tf.Tensor,
  inputs: T,
  dy: tf.Tensor,
): Promise<Float32Array[]> {
  const y = f(...inputs);
  const grads = tf.grads((...xs) => tf.sum(tf.mul(f(...xs as T), dy)))(inputs);
  const values = await Promise.all([y, ...grads].map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([y, ...grads]);
  return values;
}

/** Tolerance of one output: |a - e| <= atol + rtol*|e|; optionally a relative L2 bound. */
export interface OpTolerance extends Tolerance {
  /** Floor of the relative-L2 denominator (default tiny): max(||e||_2, l2Floor). */
  l2Floor?: number;
}

/**
 * Compares named outputs with their tolerances; NaN (a poisoned, unwritten element) always
 * fails. Throws one error listing every failing output.
 */
export function checkOp(
  actual: Record<string, ArrayLike<number>>,
  expected: Record<string, ArrayLike<number>>,
  tolerances: Record<string, OpTolerance>,
  label: string,
): void {
  const failures: string[] = [];
  for (const [name, tol] of Object.entries(tolerances)) {
    const a = actual[name], e = expected[name];
    if (!a || !e) {
      failures.push(`${label} ${name}: missing (${!a ? "actual" : "expected"})`);
      continue;
    }
    const r = compareArrays(a, e, { atol: tol.atol, rtol: tol.rtol }, `${label} ${name}`);
    if (!r.ok) failures.push(r.message);
    if (tol.relL2 !== undefined && r.ok) {
      const err = relL2(a, e, tol.l2Floor);
      if (!(err <= tol.relL2)) {
        failures.push(`${label} ${name}: rel L2 ${err.toExponential(3)} > ${tol.relL2}`);
      }
    }
  }
  if (failures.length > 0) throw new Error(failures.join("\n"));
}

/** Every tile configuration of every view (software and discrete candidates). */
export const ALL_TILE_CONFIGS: TileConfig[] = CONV_VIEWS.flatMap((v) => allConfigs(v));

/** The tile configuration named `id`; throws when there is none (a renamed config in a test). */
export function tileConfig(id: string): TileConfig {
  const c = ALL_TILE_CONFIGS.find((t) => t.id === id);
  if (!c) throw new Error(`no tile config ${id}`);
  return c;
}

/** The case with `config` pinned for its view. */
export function withTileConfig(c: ConvCase, config: TileConfig | undefined): ConvCase {
  return config ? { ...c, config } : c;
}

/** The tile plan a case's op calls pass (attrs.tiles): its pinned config over its plan. */
export function caseTiles(c: ConvCase): TilePlan | undefined {
  if (!c.config) return c.plan;
  return pinTileConfig(c.plan ?? defaultTilePlan(tf.backend()), c.config);
}

/** A case plus the tile configuration it runs under (fast-check dimension). */
export interface ConfiguredCase {
  c: ConvCase;
  config: TileConfig;
}

/**
 * Random (case, configuration) pairs; `examples` pins every configuration on the given fixed
 * cases, so each candidate of the space runs at least once per fixed case, whatever the seed.
 * fast-check counts examples within numRuns: pass `numRuns(quick)` (examples + runs(quick)).
 */
export function configuredCases(
  views: readonly ConvView[],
  fixed: ConvCase[] = [],
  channels: number[] = CHANNELS,
): {
  arb: fc.Arbitrary<ConfiguredCase>;
  examples: [ConfiguredCase][];
  numRuns: (quick: number) => number;
} {
  const configs = views.flatMap((v) => allConfigs(v));
  const examples = configs.flatMap((config) => fixed.map((c): [ConfiguredCase] => [{ c, config }]));
  return {
    arb: fc.record({ c: convCaseArb(channels), config: fc.constantFrom(...configs) }),
    examples,
    numRuns: (quick) => examples.length + runs(quick),
  };
}

/**
 * Fixed cases every configuration runs on: vec4 widths with partial tiles (84 rows, Cout 12),
 * scalar widths with stride-2 phases, and a first-layer shape (Cin 1, stride 2 x 1, valid); and
 * two where the row-window configs run as windows (rows of 7+ pixels, src/ops/conv/tiling.ts's
 * rowWindowApplies): 31-pixel rows split into a 16- and a 15-pixel tile with a clamped column
 * group (Cout 12 under a 16-column tile), and Cin 1 (scalar x) with valid padding.
 */
export const TILE_EDGE_CASES: ConvCase[] = [
  { n: 2, h: 7, w: 6, cin: 8, cout: 12, kh: 3, kw: 3, strides: [1, 1], pad: "same", seed: 11 },
  { n: 2, h: 9, w: 8, cin: 3, cout: 5, kh: 3, kw: 3, strides: [2, 2], pad: "same", seed: 12 },
  { n: 3, h: 10, w: 7, cin: 1, cout: 8, kh: 5, kw: 3, strides: [2, 1], pad: "valid", seed: 13 },
  { n: 2, h: 4, w: 31, cin: 8, cout: 12, kh: 3, kw: 3, strides: [1, 1], pad: "same", seed: 14 },
  { n: 3, h: 4, w: 10, cin: 1, cout: 8, kh: 3, kw: 3, strides: [1, 1], pad: "valid", seed: 15 },
];

/**
 * Registers a GPU property test over (case, tile configuration) pairs of `views`: `check` gets
 * the case with the configuration pinned (withTileConfig); every configuration runs on each of
 * `fixed`, and runs(quickRuns) random pairs come on top.
 */
export function tileConfigPropertyTest(
  name: string,
  views: readonly ConvView[],
  fixed: ConvCase[],
  check: (c: ConvCase, config: TileConfig) => Promise<void>,
  opts: { seed: number; quickRuns: number },
): void {
  const cases = configuredCases(views, fixed);
  gpuPropertyTest(
    name,
    cases.arb,
    ({ c, config }) => check(withTileConfig(c, config), config),
    { seed: opts.seed, numRuns: cases.numRuns(opts.quickRuns), examples: cases.examples },
  );
}
