// The frame of a test that trains on real data: Fashion-MNIST on disk (else the test is ignored,
// the reason printed), the webgpu backend, and a temp folder for the run, removed afterwards.

import { initTf } from "../../src/tf/setup.ts";
import { needsRealData, withTempDir } from "./data_fixtures.ts";

/** `Deno.test(name, ...)` running `fn(dir)` on webgpu with a fresh temp folder `dir`. */
export function trainingTest(name: string, fn: (dir: string) => Promise<void>): void {
  Deno.test(name, { ignore: needsRealData(name) }, async () => {
    await initTf("webgpu");
    await withTempDir(fn, "fmnist-train-test-");
  });
}
