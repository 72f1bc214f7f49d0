// Bundles a browser entry module (the classifier page, the kernel test page) from the project's
// own modules into one ES module, with the WGSL of kernels/ embedded.
//
// `deno bundle` (esbuild inside Deno) resolves our npm imports from node_modules and inlines
// everything, so the page fetches nothing but this file. One adjustment for the browser:
// kernelSource() reads kernels/*.wgsl from disk under Deno; the bundle starts with a table of
// those files under globalThis[EMBEDDED_WGSL_GLOBAL], which kernelSource() uses instead. The page's
// modules must not import the CLI (src/cli/args.ts pulls in node:util).

import { EMBEDDED_WGSL_GLOBAL } from "../ops/webgpu_program.ts";

const ROOT = new URL("../../", import.meta.url);

/** Reads kernels/*.wgsl (sorted by name) as { name: source }. */
export async function readKernelSources(): Promise<Record<string, string>> {
  const dir = new URL("kernels/", ROOT);
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".wgsl")) names.push(e.name.slice(0, -5));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  names.sort();
  const out: Record<string, string> = {};
  for (const n of names) out[n] = await Deno.readTextFile(new URL(`${n}.wgsl`, dir));
  return out;
}

/**
 * Bundles `entry` (a path or file URL) for the browser; returns the JavaScript. Throws with
 * deno bundle's message when the build fails.
 */
export async function bundleForBrowser(entry: string | URL): Promise<string> {
  const deno = Deno.execPath();
  if (!/^deno(\.exe)?$/.test(deno.split(/[\\/]/).pop() ?? "")) {
    throw new Error(
      `the page is bundled with \`deno bundle\`, and this program runs as ${deno}, not deno: ` +
        "start it with `deno task serve` from the project folder",
    );
  }
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const importMap = { imports: config.imports };
  const tmp = await Deno.makeTempDir({ prefix: "fmnist-bundle-" });
  try {
    const mapPath = `${tmp}/import_map.json`;
    const outPath = `${tmp}/bundle.js`;
    await Deno.writeTextFile(mapPath, JSON.stringify(importMap));
    const entryPath = entry instanceof URL ? entry.pathname : entry;
    const { success, stderr } = await new Deno.Command(deno, {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "--import-map",
        mapPath,
        "--output",
        outPath,
        entryPath,
      ],
      cwd: ROOT.pathname,
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!success) {
      throw new Error(`bundling ${entryPath} failed: ${new TextDecoder().decode(stderr).trim()}`);
    }
    const js = await Deno.readTextFile(outPath);
    const wgsl = await readKernelSources();
    const prologue = `globalThis[${JSON.stringify(EMBEDDED_WGSL_GLOBAL)}] = ${
      JSON.stringify(wgsl)
    };\n`;
    return prologue + js;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
