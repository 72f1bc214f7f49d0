// `deno task compile`: one executable, dist/fmnist, that runs train/eval/predict/tune/bench/profile
// with the same flags as `deno task <command>`.
//
// First choice: `deno compile -A --include src/ops` (the WGSL files). It needs Deno's stripped runtime (denort),
// which deno downloads from dl.deno.land once, or takes from $DENORT_BIN. Where neither is
// possible (this offline workplace, the GPU machines), we build the same thing by hand: a
// self-extracting launcher = a POSIX sh header + an xz tarball holding the deno binary, the app
// bundled into one JS file (`deno bundle`) with the ops' WGSL in a table at its top. On first run it unpacks into
// $FMNIST_HOME (default ~/.cache/fmnist/<hash>) and then execs deno on the bundle.

import { helpText, parseFlags } from "../src/cli/args.ts";
import { UsageError } from "../src/errors.ts";
import { embeddedWgslPrologue } from "../src/serve/bundle.ts";

const FLAGS = {
  out: { type: "string", default: "dist/fmnist", help: "output executable" },
  mode: {
    type: "enum",
    choices: ["auto", "deno-compile", "launcher"],
    default: "auto",
    help: "auto: deno compile, else the self-extracting launcher when denort is unavailable",
  },
  entry: { type: "string", default: "src/main.ts", help: "entry module" },
  xz: { type: "bool", help: "also report the size after xz -T2 -6 (what a GPU run carries)" },
} as const;

/**
 * deno bundle cannot inline a native N-API addon: eval loads resvg lazily and skips PNGs without;
 * export and predict --onnx install and load ONNX Runtime on first use (src/export/ort_install.ts).
 */
const EXTERNAL = ["@resvg/resvg-js"];

async function sh(cmd: string, args: string[], opts: { cwd?: string } = {}) {
  const env = { NO_COLOR: "1" }; // plain messages to match on
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function mib(bytes: number) {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

async function denoCompile(
  out: string,
  entry: string,
): Promise<{ ok: true } | { ok: false; why: string }> {
  // deno compile refuses to overwrite a file it did not write (e.g. our launcher): build beside
  // it, then rename.
  const tmp = `${out}.compile-tmp`;
  await Deno.remove(tmp).catch(() => {});
  const r = await sh(Deno.execPath(), ["compile", "-A", "--include", "src/ops", "-o", tmp, entry]);
  if (r.code === 0) {
    await Deno.rename(tmp, out);
    return { ok: true };
  }
  const text = r.stderr;
  const runtimeMissing = /denort|dl\.deno\.land|error sending request|dns error/i.test(text);
  if (!runtimeMissing) throw new Error(`deno compile failed:\n${text.trim()}`);
  return {
    ok: false,
    why: "deno compile needs the denort runtime (downloaded from dl.deno.land, unreachable here; " +
      "or set DENORT_BIN)",
  };
}

/** The launcher's sh header; PAYLOAD_OFFSET is patched in once the header's length is known. */
function launcherHeader(id: string, offset: number): string {
  return `#!/bin/sh
# fmnist: self-extracting launcher built by \`deno task compile\` (scripts/compile.ts).
# Payload: deno + the app bundled into one JS file (WGSL embedded), as an xz tarball.
set -e
dir="\${FMNIST_HOME:-\${XDG_CACHE_HOME:-$HOME/.cache}/fmnist}/${id}"
if [ ! -x "$dir/deno" ]; then
  tmp="$dir.tmp.$$"
  mkdir -p "$tmp"
  if command -v xz >/dev/null 2>&1; then
    tail -c +${String(offset).padStart(10, "0")} "$0" | xz -dc | tar -x -C "$tmp"
  else
    tail -c +${String(offset).padStart(10, "0")} "$0" | python3 -c \\
      'import lzma,sys; sys.stdout.buffer.write(lzma.decompress(sys.stdin.buffer.read()))' |
      tar -x -C "$tmp"
  fi
  mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
DENO_NO_UPDATE_CHECK=1 exec "$dir/deno" run -A --no-config --no-lock "$dir/app/bin/fmnist.js" "$@"
`;
}

async function buildLauncher(out: string, entry: string): Promise<void> {
  const stage = await Deno.makeTempDir({ prefix: "fmnist-launcher-" });
  try {
    // The bundle has no src/ops/ folder beside it: it starts with the WGSL table that wgsl()
    // reads instead (src/ops/backend/wgsl.ts), as the browser page's bundle does.
    const bundle = `${stage}/app/bin/fmnist.js`;
    const externals = EXTERNAL.flatMap((e) => ["--external", e]);
    const b = await sh(Deno.execPath(), [
      "bundle",
      "--config",
      "deno.json",
      "--platform",
      "deno",
      ...externals,
      "-o",
      bundle,
      entry,
    ]);
    if (b.code !== 0) throw new Error(`deno bundle failed:\n${b.stderr.trim()}`);
    await Deno.writeTextFile(
      bundle,
      (await embeddedWgslPrologue()) + await Deno.readTextFile(bundle),
    );
    await Deno.copyFile(Deno.execPath(), `${stage}/deno`);
    const tar = await sh("tar", [
      "-C",
      stage,
      "-cf",
      `${stage}/payload.tar`,
      "deno",
      "app",
    ]);
    if (tar.code !== 0) throw new Error(`tar failed: ${tar.stderr.trim()}`);
    const xz = await sh("xz", ["-T2", "-6", "-f", `${stage}/payload.tar`]);
    if (xz.code !== 0) throw new Error(`xz failed: ${xz.stderr.trim()}`);
    const payload = await Deno.readFile(`${stage}/payload.tar.xz`);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", payload));
    const id = [...digest.slice(0, 8)].map((x) => x.toString(16).padStart(2, "0")).join("");
    // The offset's digits are padded to a fixed width, so the header length does not move.
    const headerLength = new TextEncoder().encode(launcherHeader(id, 0)).length;
    const header = new TextEncoder().encode(launcherHeader(id, headerLength + 1));
    const exe = new Uint8Array(header.length + payload.length);
    exe.set(header);
    exe.set(payload, header.length);
    const tmp = `${out}.tmp-${Deno.pid}`;
    await Deno.writeFile(tmp, exe, { mode: 0o755 });
    await Deno.rename(tmp, out);
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

async function xzSize(path: string): Promise<number> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `xz -T2 -6 -c "$1" | wc -c`, "sh", path],
    stdout: "piped",
  }).output();
  return Number(new TextDecoder().decode(r.stdout).trim());
}

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, FLAGS);
  if (f.help) {
    console.log(helpText("deno task compile [-- --out dist/fmnist] [--mode ...]", FLAGS));
    return;
  }
  const dir = f.out.includes("/") ? f.out.slice(0, f.out.lastIndexOf("/")) : ".";
  await Deno.mkdir(dir, { recursive: true });
  let kind = "deno compile";
  if (f.mode !== "launcher") {
    const r = await denoCompile(f.out, f.entry);
    if (!r.ok) {
      if (f.mode === "deno-compile") throw new UsageError(r.why);
      console.log(`compile: ${r.why}; building a self-extracting launcher instead`);
      kind = "self-extracting launcher";
    }
  } else {
    kind = "self-extracting launcher";
  }
  if (kind !== "deno compile") await buildLauncher(f.out, f.entry);
  const size = (await Deno.stat(f.out)).size;
  console.log(`compile: wrote ${f.out} (${kind}, ${mib(size)})`);
  if (f.xz) {
    const packed = kind === "deno compile" ? await xzSize(f.out) : size; // launcher: already xz
    console.log(`compile: ${mib(packed)} after xz -T2 -6 (GPU runs carry at most 64 MiB)`);
  }
}

if (import.meta.main) {
  const { runCommand } = await import("../src/cli/args.ts");
  await runCommand("compile", () => main(Deno.args));
}
