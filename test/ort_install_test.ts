// ONNX Runtime's install on first use (src/export/ort_install.ts): an installed copy is loaded
// from its folder as is, a failed install says so in one line and leaves nothing, the folder is
// per version, and deno.json does not list the runtime (so no other command downloads it). The
// install itself runs in test/export_onnx_test.ts, the first time ONNX Runtime is needed.

import assert from "node:assert/strict";
import { ORT_PACKAGE, ortDir, requireOnnxRuntime } from "../src/export/ort_install.ts";
import { withTempDir } from "./helpers/data_fixtures.ts";
import { UsageError } from "../src/errors.ts";

Deno.test("ort_install: an installed copy is required from its folder, with no install", async () => {
  await withTempDir(async (dir) => {
    const pkg = `${dir}/node_modules/onnxruntime-node`;
    await Deno.mkdir(pkg, { recursive: true });
    await Deno.writeTextFile(`${pkg}/package.json`, '{"name":"onnxruntime-node","main":"i.js"}');
    await Deno.writeTextFile(`${pkg}/i.js`, "module.exports = { marker: 42 };");
    const ort = await requireOnnxRuntime(dir) as { marker: number };
    assert.equal(ort.marker, 42);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["node_modules"]);
  });
});

Deno.test("ort_install: a failed install is one UsageError line and leaves no folder behind", async () => {
  await withTempDir(async (dir) => {
    const saved = ["DENO_DIR", "NPM_CONFIG_REGISTRY"].map((k) => [k, Deno.env.get(k)] as const);
    try {
      Deno.env.set("DENO_DIR", `${dir}/deno-dir`); // an empty cache, and a registry that refuses
      Deno.env.set("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/");
      await assert.rejects(
        requireOnnxRuntime(`${dir}/cache/ort`),
        (e: Error) =>
          e instanceof UsageError && /^cannot install ONNX Runtime .*: .+$/.test(e.message) &&
          !e.message.includes("\n"),
      );
    } finally {
      for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
    const left = await Array.fromAsync(Deno.readDir(`${dir}/cache`));
    assert.deepEqual(left.map((e) => e.name), []);
  });
});

Deno.test("ort_install: the folder is per version, under XDG_CACHE_HOME", () => {
  const old = Deno.env.get("XDG_CACHE_HOME");
  try {
    Deno.env.set("XDG_CACHE_HOME", "/x/cache");
    assert.equal(ortDir(), `/x/cache/fmnist-webgpu/${ORT_PACKAGE}`);
  } finally {
    if (old === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", old);
  }
});

Deno.test("ort_install: deno.json and deno.lock leave ONNX Runtime out; its own lock pins it", async () => {
  const root = new URL("..", import.meta.url);
  const config = await Deno.readTextFile(new URL("deno.json", root));
  const lock = await Deno.readTextFile(new URL("deno.lock", root));
  assert.doesNotMatch(config, /onnxruntime/);
  assert.doesNotMatch(lock, /onnxruntime/);
  const own = JSON.parse(
    await Deno.readTextFile(new URL("src/export/onnxruntime.lock.json", root)),
  );
  assert.equal(own.specifiers[`npm:${ORT_PACKAGE}`], ORT_PACKAGE.split("@")[1]);
});
