// Files with several writers: the autotune cache updated by two processes at once keeps every
// entry and always parses; the lock gives up after its timeout instead of hanging.

import assert from "node:assert/strict";
import { AutotuneCache, parseCacheFile } from "../src/ops/autotune/autotune.ts";
import { LockTimeoutError, updateSharedFile, withFileLock } from "../src/shared_json_file.ts";
import { TEST_ADAPTER } from "./helpers/autotune_cache_writer.ts";

const WRITER = new URL("./helpers/autotune_cache_writer.ts", import.meta.url).pathname;
/** Saves per writer: enough that unlocked read-merge-write cycles overlap and lose entries. */
const SAVES = 150;

Deno.test("shared file: two processes saving the autotune cache at once lose no entry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shared_cache_" });
  const path = `${dir}/cache/autotune.json`;
  await Deno.mkdir(`${dir}/cache`);
  try {
    const writers = ["a", "b"].map((prefix) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", WRITER, path, prefix, String(SAVES)],
        stdout: "null",
        stderr: "piped",
      }).output()
    );
    await new Promise((r) => setTimeout(r, 300)); // both writers past their imports
    await Deno.writeTextFile(`${path}.go`, "");
    let done = false;
    const all = Promise.all(writers).finally(() => done = true);
    // Meanwhile read the file as another trial would: it must parse every time.
    let reads = 0;
    while (!done) {
      const text = await Deno.readTextFile(path).catch(() => null);
      if (text !== null) {
        const parsed = parseCacheFile(text);
        assert.ok(!("error" in parsed), `read ${reads}: ${JSON.stringify(parsed)}`);
        reads++;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    for (const out of await all) {
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const cache = await AutotuneCache.open(path, (m) => assert.fail(m));
    const names = Object.keys(cache.entries(TEST_ADAPTER)).sort();
    const want = ["a", "b"].flatMap((p) => Array.from({ length: SAVES }, (_, i) => `${p}-${i}`));
    assert.deepEqual(names, want.sort());
    assert.ok(reads > 0, "the reader saw the file");
    const leftovers = (await Array.fromAsync(Deno.readDir(`${dir}/cache`))).map((e) => e.name);
    assert.deepEqual(leftovers.sort(), ["autotune.json", "autotune.json.go", "autotune.json.lock"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shared file: a held lock makes another update wait, then time out with a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shared_lock_" });
  const path = `${dir}/f.json`;
  try {
    await updateSharedFile(path, () => "1");
    await withFileLock(`${path}.lock`, async () => {
      await assert.rejects(
        updateSharedFile(path, () => "2", { timeoutMs: 50 }),
        (e: Error) =>
          e instanceof LockTimeoutError && /f\.json\.lock: still locked/.test(e.message),
      );
    });
    assert.equal(await Deno.readTextFile(path), "1", "the timed-out update wrote nothing");
    await updateSharedFile(path, (cur) => `${cur}+2`);
    assert.equal(await Deno.readTextFile(path), "1+2", "released after the holder finished");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
