// Bundles a browser entry module (the classifier page, the kernel test page) from the project's
// own modules into one ES module, with the ops' WGSL embedded.
//
// `deno bundle` (esbuild inside Deno) resolves our npm imports from node_modules and inlines
// everything, so the page fetches nothing but this file. One adjustment for the browser: wgsl()
// (src/ops/backend/wgsl.ts) reads src/ops/**/*.wgsl from disk under Deno; the bundle starts with a
// table of those files under globalThis[EMBEDDED_WGSL_GLOBAL], which wgsl() uses instead. The
// page's modules must not import the CLI (src/cli/args.ts pulls in node:util).

import { EMBEDDED_WGSL_GLOBAL, readAllWgsl } from "../ops/backend/wgsl.ts";

const ROOT = new URL("../../", import.meta.url);

/** The statement a bundle starts with: every WGSL source of src/ops/ in the global table. */
export async function embeddedWgslPrologue(): Promise<string> {
  return `globalThis[${JSON.stringify(EMBEDDED_WGSL_GLOBAL)}] = ${
    JSON.stringify(await readAllWgsl())
  };\n`;
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
    const prologue = await embeddedWgslPrologue();
    return prologue + js;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
