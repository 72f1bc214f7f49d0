// Child process for test/shared_json_file_test.ts: opens the autotune cache at argv[0], records
// one entry named `<argv[1]>-<i>` and saves, argv[2] times over, like a trial of a job array.

import { type AdapterIdentity, AutotuneCache } from "../../src/ops/autotune/autotune.ts";

export const TEST_ADAPTER: AdapterIdentity = {
  vendor: "test",
  architecture: "none",
  device: "writer",
  description: "concurrency test",
  driver: "0",
  runtime: "test",
};

if (import.meta.main) {
  const [path, prefix, count] = Deno.args;
  const fail = (m: string) => {
    throw new Error(m);
  };
  // Start together (the test creates `<path>.go` once both are up), so the saves overlap.
  while (!(await Deno.stat(`${path}.go`).then(() => true, () => false))) {
    await new Promise((r) => setTimeout(r, 2));
  }
  for (let i = 0; i < Number(count); i++) {
    const cache = await AutotuneCache.open(path, fail);
    cache.record(TEST_ADAPTER, `${prefix}-${i}`, {
      choice: "a",
      timings: { a: i, b: null },
      clock: "test",
      date: new Date().toISOString(),
    });
    await cache.save(fail);
  }
}
