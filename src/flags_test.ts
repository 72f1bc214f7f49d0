import assert from "node:assert/strict";
import {
  autotuneSetting,
  denseMode,
  FLAG_DOCS,
  forcedTileConfigIds,
  readFlag,
  useNaiveKernels,
  withFlags,
} from "./flags.ts";

Deno.test("flags: overrides win over the environment, nest, and are restored after sync and async calls", async () => {
  Deno.env.set("FMNIST_DENSE", "gemm");
  try {
    assert.equal(denseMode(), "gemm");
    withFlags({ FMNIST_DENSE: "matmul" }, () => {
      assert.equal(denseMode(), "matmul");
      withFlags({ FMNIST_DENSE: undefined }, () => assert.equal(denseMode(), "auto"));
      assert.equal(denseMode(), "matmul");
    });
    assert.equal(denseMode(), "gemm");
    await withFlags({ FMNIST_NAIVE_KERNELS: "1" }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      assert.equal(useNaiveKernels(), true);
    });
    assert.equal(useNaiveKernels(), false);
    assert.throws(() =>
      withFlags({ FMNIST_DENSE: "x" }, () => {
        throw new Error("boom");
      }), /boom/);
    assert.equal(readFlag("FMNIST_DENSE"), "gemm", "restored after a throw");
  } finally {
    Deno.env.delete("FMNIST_DENSE");
  }
});

Deno.test("flags: bad values name the variable and the choices", () => {
  withFlags({ FMNIST_AUTOTUNE: "fast" }, () => {
    assert.throws(
      autotuneSetting,
      /^UsageError: FMNIST_AUTOTUNE must be one of on\|off\|refresh, got "fast"$/,
    );
  });
  withFlags({ FMNIST_AUTOTUNE: " OFF " }, () => assert.equal(autotuneSetting(), "off"));
  withFlags({ FMNIST_TILE_CONFIG: " fwd.a, ,bwdData.b " }, () => {
    assert.deepEqual(forcedTileConfigIds(), ["fwd.a", "bwdData.b"]);
  });
});

Deno.test("flags: every FMNIST_ name in the program's sources is documented in FLAG_DOCS", async () => {
  const used = new Set<string>();
  async function walk(dir: URL) {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (/\.(ts|sh)$/.test(e.name)) {
        for (
          const m of (await Deno.readTextFile(new URL(e.name, dir))).matchAll(/FMNIST_[A-Z_]+/g)
        ) {
          used.add(m[0]);
        }
      }
    }
  }
  await walk(new URL("./", import.meta.url));
  used.delete("FMNIST_EMBEDDED_WGSL"); // a global of bundles, not a switch
  used.delete("FMNIST_"); // the prefix in this test
  const missing = [...used].filter((n) => !(n in FLAG_DOCS));
  assert.deepEqual(missing, [], "undocumented FMNIST_* switches");
});
