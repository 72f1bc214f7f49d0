// ONNX Runtime (npm:onnxruntime-node, the native CPU build) is installed on first use, into a
// cache folder outside the project, not listed in deno.json: Deno fetches every package that
// deno.json names or deno.lock holds on the first run of any command, so listing it made the
// first `deno task train` fill node_modules with 424 MB, where training needs 133 MB (measured
// in a fresh clone with an empty DENO_DIR; onnxruntime-node alone is 288 MB, binaries for three
// OSes). Only `export` (which checks every model it writes) and `predict --onnx` load it.
//
// The install is `deno install --frozen` against onnxruntime.lock.json (its deno.lock: the exact
// versions and integrity hashes), into a temp folder renamed into place, so an interrupted or
// concurrent install never leaves a half-filled folder where the next run would look.

import { createRequire } from "node:module";
import { UsageError } from "../errors.ts";
import lock from "./onnxruntime.lock.json" with { type: "json" };

export const ORT_PACKAGE = "onnxruntime-node@1.30.0";

/** $XDG_CACHE_HOME (else ~/.cache)/fmnist-webgpu/onnxruntime-node@<version>. */
export function ortDir(): string {
  const cache = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? "."}/.cache`;
  return `${cache}/fmnist-webgpu/${ORT_PACKAGE}`;
}

/** The onnxruntime-node module, installed first where it is missing. */
export async function requireOnnxRuntime(dir = ortDir()): Promise<unknown> {
  if (!(await isFile(`${dir}/node_modules/onnxruntime-node/package.json`))) {
    await installOnnxRuntime(dir);
  }
  return createRequire(`${dir}/`)("onnxruntime-node");
}

async function installOnnxRuntime(dir: string): Promise<void> {
  console.error(`installing ONNX Runtime (npm:${ORT_PACKAGE}, 291 MB, once) into ${dir}`);
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  try {
    await Deno.mkdir(tmp, { recursive: true });
    const config = {
      imports: { "onnxruntime-node": `npm:${ORT_PACKAGE}` },
      nodeModulesDir: "auto",
    };
    await Deno.writeTextFile(`${tmp}/deno.json`, JSON.stringify(config, null, 2) + "\n");
    await Deno.writeTextFile(`${tmp}/deno.lock`, JSON.stringify(lock, null, 2) + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--frozen", "--quiet"],
      cwd: tmp,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const why = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
      throw new UsageError(`cannot install ONNX Runtime (npm:${ORT_PACKAGE}) into ${dir}: ${why}`);
    }
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      // Another process installed it meanwhile: use theirs.
      if (!(await isFile(`${dir}/node_modules/onnxruntime-node/package.json`))) throw e;
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
