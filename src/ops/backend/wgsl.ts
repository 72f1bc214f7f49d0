// WGSL sources of the ops, one way for every kernel: `wgsl("max_pool2/max_pool2_grad.wgsl")`
// names a file by its path under src/ops/, and a line `#include "../wgsl/channel_sums.wgsl"` in a
// kernel pulls in a shared snippet (path relative to the including file; each file at most once
// per kernel, so two snippets may include a third). WGSL resolves module-scope names in any order,
// so where the include sits does not matter.
//
// Under Deno the files are read from disk next to this module; a bundle (the browser page,
// `deno task compile`) has no such folder, so it carries every source in a table under
// globalThis[EMBEDDED_WGSL_GLOBAL] (src/serve/bundle.ts writes it), which is read instead.

/** Where a bundle puts the sources: path under src/ops/ -> WGSL. */
export const EMBEDDED_WGSL_GLOBAL = "FMNIST_EMBEDDED_WGSL";

const OPS_ROOT = new URL("../", import.meta.url);
const INCLUDE = /^\s*#include\s+"([^"]+)"\s*$/;
const files = new Map<string, string>();
const expanded = new Map<string, string>();

/** `max_pool2/../wgsl/x.wgsl` -> `wgsl/x.wgsl`; throws on a path that leaves src/ops/. */
export function normalizeWgslPath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) throw new Error(`WGSL path ${path} leaves src/ops/`);
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

function readFile(path: string): string {
  let src = files.get(path);
  if (src !== undefined) return src;
  const embedded = (globalThis as Record<string, unknown>)[EMBEDDED_WGSL_GLOBAL] as
    | Record<string, string>
    | undefined;
  if (embedded) {
    src = embedded[path];
    if (src === undefined) throw new Error(`WGSL file src/ops/${path} is not in the bundle`);
  } else {
    src = Deno.readTextFileSync(new URL(path, OPS_ROOT));
  }
  files.set(path, src);
  return src;
}

function expand(path: string, seen: Set<string>, from: string[]): string {
  if (from.includes(path)) {
    throw new Error(`WGSL include cycle: ${[...from, path].join(" -> ")}`);
  }
  if (seen.has(path)) return "";
  seen.add(path);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  return readFile(path).split("\n").map((line) => {
    const m = INCLUDE.exec(line);
    if (!m) return line;
    return expand(normalizeWgslPath(dir + m[1]), seen, [...from, path]);
  }).join("\n");
}

/** The WGSL of src/ops/<path> with its includes expanded; cached per path. */
export function wgsl(path: string): string {
  const key = normalizeWgslPath(path);
  let src = expanded.get(key);
  if (src === undefined) {
    src = expand(key, new Set(), []);
    expanded.set(key, src);
  }
  return src;
}

/** Every .wgsl file under src/ops/ as { path: source } (for bundles). */
export async function readAllWgsl(): Promise<Record<string, string>> {
  const paths: string[] = [];
  async function walk(dir: URL, prefix: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`);
      else if (e.isFile && e.name.endsWith(".wgsl")) paths.push(prefix + e.name);
    }
  }
  await walk(OPS_ROOT, "");
  paths.sort();
  const out: Record<string, string> = {};
  for (const p of paths) out[p] = await Deno.readTextFile(new URL(p, OPS_ROOT));
  return out;
}
