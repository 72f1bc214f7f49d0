// Our kernels' property tests on a second WebGPU implementation: Chromium's (Dawn + Tint; here
// the SwiftShader adapter). Starts the server with the kernel test page, opens it in headless
// Chromium and fails with the page's first mismatching case (shape and seed included).
// Skipped, with the reason printed, where Chromium is not installed.

import assert from "node:assert/strict";
import { type RunningServer, startServer } from "../src/serve/server.ts";
import { Browser, chromiumMissing } from "./browser_cdp.ts";
import { writeUntrainedRun } from "./browser_fixtures.ts";
import { TILE_EDGE_CASES } from "./helpers/op_check.ts";
import type { KernelSuiteResult } from "./browser_kernels_page.ts";

const missing = chromiumMissing();
if (missing) console.log(`browser_kernels_test: skipped: ${missing}`);

/** Random cases per suite (forward, backward): ~10 s on SwiftShader with 2 busy cores. */
const RUNS = 60;

Deno.test({
  name: "kernels: forward and backward property tests pass in Chromium's WebGPU",
  ignore: missing !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "fmnist-kernels-" });
    let server: RunningServer | undefined;
    const b = await Browser.launch({ webgpu: true });
    try {
      await writeUntrainedRun(dir);
      server = await startServer({ run: dir, port: 0, kernelTests: true });
      await b.open(`${server.url}kernel-tests.html?runs=${RUNS}`);
      const r = await b.eval<KernelSuiteResult>("kernelSuite", 300_000);
      const worst = Object.entries(r.worstRelL2).map(([k, v]) => `${k} ${v.toExponential(1)}`);
      console.log(
        `kernel suite on ${r.adapter}: ${r.cases.forward} forward + ${r.cases.backward} ` +
          `backward cases in ${r.seconds.toFixed(1)} s; worst rel L2: ${worst.join(", ")}`,
      );
      assert.equal(r.failure, null, r.failure ?? "");
      const expected = TILE_EDGE_CASES.length + RUNS;
      assert.deepEqual(r.cases, { forward: expected, backward: expected });
      assert.match(r.adapter, /\S/);
      assert.deepEqual(b.errors(), [], "console errors");
    } finally {
      await b.close();
      await server?.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
