/// <reference lib="dom" />
// The kernel test page (served by `deno task serve --kernel-tests` at /kernel-tests.html; run
// headless by test/browser_kernels_test.ts): the fast-check property tests of our fused
// conv + batch-norm + ReLU kernels inside the browser, on its WebGPU implementation (Chromium:
// Dawn + Tint; in CI the SwiftShader adapter), against the CPU reference (float64 host loops).
// Case generators, data builders and tolerances are the Deno suite's (op_check.ts,
// conv_bn_relu_checks.ts): a second implementation checking the same WGSL, not a copy.
//
// Checked per random case: the training forward (z, batch stats, y), the public op's mean and
// variance, the inference forward, and the backward kernel (dx, dfilter, dgamma, dbeta).
// The tile configurations are the browser's (src/serve/page/browser_tiles.ts). The first
// failing case stops the run and is reported with its shape and seed.

import fc from "fast-check";
import { registerOps } from "../src/ops/registry.ts";
import { convBnReluGradRef } from "../src/ops/conv_bn_relu/conv_bn_relu_grad_ref.ts";
import { convBnReluTrainRef } from "../src/ops/conv_bn_relu/conv_bn_relu_ref.ts";
import type { ConvView } from "../src/ops/conv/tiling.ts";
import type { ConvGeometry } from "../src/ops/conv/geometry.ts";
import { planChoices, type TilePlan } from "../src/ops/conv/tile_plan.ts";
import { browserTilePlan } from "../src/serve/page/browser_tiles.ts";
import { compareArrays } from "./helpers/compare.ts";
import {
  type ConvCase,
  convCaseArb,
  describeCase,
  TILE_EDGE_CASES,
  withGpu,
} from "./helpers/op_check.ts";
import {
  caseData,
  checkGpuAgainstRef,
  checkGrads,
  EPS,
  KERNEL_TOL,
  makeCaseData,
  runGradKernel,
  runOurs,
  runTrainKernel,
} from "./helpers/conv_bn_relu_checks.ts";

export interface KernelSuiteResult {
  adapter: string;
  /** Cases checked per suite (forward, backward), fixed edge cases included. */
  cases: { forward: number; backward: number };
  /** Worst relative L2 error per output over all passing cases. */
  worstRelL2: Record<string, number>;
  /** The first mismatch (with its case) or error, null when everything passed. */
  failure: string | null;
  /** Tile configuration per (view, shape class) that ran. */
  tiles: Record<string, string>;
  seconds: number;
}

const params = new URLSearchParams(location.search);
/** ?runs=N random cases per suite (default 24), ?seed=S. */
const RUNS = Number(params.get("runs") ?? 24);
const SEED = Number(params.get("seed") ?? 20261201);

const worst: Record<string, number> = {};
function track(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) {
  const r = compareArrays(actual, expected, { atol: Infinity, rtol: 0 }, name);
  worst[name] = Math.max(worst[name] ?? 0, r.relL2);
}

/** The browser's tile plan (set once the adapter is known) and the views the cases ran. */
let plan: TilePlan | undefined;
const ran: { view: ConvView; g: ConvGeometry }[] = [];

async function forwardCase(plain: ConvCase) {
  const c = { ...plain, plan };
  const d = caseData(c);
  ran.push({ view: "fwd", g: d.g });
  await checkGpuAgainstRef(d); // throws with the case on a mismatch
  const ref = convBnReluTrainRef(d.x, d.filter, d.gamma, d.beta, d.g, EPS);
  const k = await runTrainKernel(d);
  track("z", k.z, ref.z);
  track("stats", k.stats, ref.stats);
  track("y", k.y, ref.y);
  const ours = await runOurs(d);
  track("mean", ours.mean, ref.stats.subarray(0, d.g.outC));
}

async function backwardCase(plain: ConvCase) {
  const c = { ...plain, plan };
  const d = makeCaseData(c);
  ran.push({ view: "bwdData", g: d.geometry }, { view: "bwdFilter", g: d.geometry });
  const expected = convBnReluGradRef(d, d.geometry);
  const r = await runGradKernel(c, d);
  checkGrads(r, expected, d, KERNEL_TOL, `backward ${describeCase(c)}`);
  for (const name of ["dx", "dfilter", "dgamma", "dbeta"] as const) {
    track(name, r[name], expected[name]);
  }
}

async function runSuite(): Promise<KernelSuiteResult> {
  registerOps();
  const t0 = performance.now();
  const log = document.getElementById("log")!;
  const say = (line: string) => {
    log.textContent += line + "\n";
  };
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
  if (!adapter) throw new Error("no WebGPU adapter in this browser");
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.description].filter((s) => s).join(" | ");
  plan = browserTilePlan(info);
  say(`adapter: ${name}`);
  const cases = { forward: 0, backward: 0 };
  let failure: string | null = null;
  try {
    // The tile edge cases, then RUNS random ones, through one direction's check.
    const runCases = async (kind: keyof typeof cases, check: typeof forwardCase, seed: number) => {
      const counted = async (c: Parameters<typeof check>[0]) => {
        await check(c);
        cases[kind]++;
      };
      for (const c of TILE_EDGE_CASES) await counted(c);
      await fc.assert(
        fc.asyncProperty(convCaseArb(), counted),
        { seed, numRuns: RUNS, endOnFailure: true },
      );
      say(`${kind}: ${cases[kind]} cases ok`);
    };
    await withGpu(async () => {
      await runCases("forward", forwardCase, SEED);
      await runCases("backward", backwardCase, SEED + 1);
    });
  } catch (e) {
    failure = (e as Error).message;
    say(`FAILED: ${failure}`);
  }
  const result: KernelSuiteResult = {
    adapter: name,
    cases,
    worstRelL2: worst,
    failure,
    tiles: plan ? Object.fromEntries(planChoices(plan, ran)) : {},
    seconds: (performance.now() - t0) / 1000,
  };
  say(JSON.stringify(result, null, 1));
  return result;
}

(globalThis as unknown as { kernelSuite: Promise<KernelSuiteResult> }).kernelSuite = runSuite();
