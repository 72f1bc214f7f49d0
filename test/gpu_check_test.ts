// scripts/gpu-check.sh end to end on this machine's adapter with the tiny budget: every step
// runs, OUTDIR holds the files a device run brings back (at most 8, each a plain file), and the
// adapter check stops the script with exit 2 on a software adapter unless --allow-software.

import assert from "node:assert/strict";
import { probeAdapter } from "../src/tf/setup.ts";
import { parseBenchDocument } from "../bench/report.ts";

const GPU = await probeAdapter();
const BASH = await new Deno.Command("bash", { args: ["-c", "command -v timeout dpkg"] }).output()
  .then((o) => o.code === 0, () => false);
const skip = !GPU ? "no WebGPU adapter" : !BASH ? "no bash/timeout/dpkg" : "";
if (skip) console.log(`gpu_check_test: ${skip}: ignored`);

const ROOT = new URL("..", import.meta.url).pathname;

async function gpuCheck(out: string, extra: string[]) {
  const r = await new Deno.Command("bash", {
    args: ["scripts/gpu-check.sh", out, "--bundle", `${out}-no-bundle`, ...extra],
    cwd: ROOT,
    env: { FMNIST_BIN: `${Deno.execPath()} run -A --no-check=remote src/main.ts` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  return { code: r.code, text };
}

Deno.test({
  name: "gpu-check.sh --budget tiny: every step runs, OUTDIR holds the 8 result files",
  ignore: !!skip,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "gpu_check_" });
    try {
      // Without --allow-software, a software adapter stops the script after the adapter check.
      const soft = GPU!.isSoftware;
      if (soft) {
        const r = await gpuCheck(`${dir}/refused`, ["--budget", "tiny"]);
        assert.equal(r.code, 2, r.text);
        assert.match(r.text, /--adapter hardware: only a software adapter is available/);
        assert.match(r.text, /the adapter check failed: .* Stopping\./);
        const summary = await Deno.readTextFile(`${dir}/refused/summary.md`);
        assert.match(summary, /\| adapter check \| failed \(exit 2\) \|/);
        assert.doesNotMatch(summary, /\| autotune \|/);
      }

      const out = `${dir}/out`;
      const r = await gpuCheck(out, ["--budget", "tiny", ...(soft ? ["--allow-software"] : [])]);
      assert.equal(r.code, 0, r.text);
      const names: string[] = [];
      for await (const e of Deno.readDir(out)) {
        assert.ok(e.isFile, `${e.name} is a plain file`);
        names.push(e.name);
      }
      assert.deepEqual(names.sort(), [
        "autotune-cache.json",
        "autotune.json",
        "bench.json",
        "gpu-check.log",
        "summary.md",
        "trace.json",
        "train-metrics.json",
        "train-run.tar.gz",
      ]);
      const summary = await Deno.readTextFile(`${out}/summary.md`);
      for (const step of ["adapter check", "autotune", "bench kernels\\+train", "profile"]) {
        assert.match(summary, new RegExp(`\\| ${step} \\| ok \\| \\d+ \\|`), summary);
      }
      assert.match(summary, /\| train enhanced \| ok \| \d+ \|/);
      assert.match(summary, /\*\*Autotune: tile config per conv layer, view and batch\*\*/);
      assert.match(summary, /\*\*Training step \(forward \+ backward \+ Adam\)\*\*/);
      // The host side of a step: the train table's columns and the profile's lines.
      assert.match(summary, /\| main-thread CPU ms \| CPU ms \/ dispatch \|/);
      assert.match(summary, /## Host side of a step \(profile\)/);
      assert.match(summary, /^host time to issue a step \d+\.\d+ ms/m);
      assert.match(summary, /^main-thread CPU per step \d+\.\d+ ms, per dispatch/m);
      assert.match(summary, /test accuracy 0\.\d+ on 64 test images/);

      const tuned = parseBenchDocument(await Deno.readTextFile(`${out}/autotune.json`), "a");
      assert.ok(tuned.autotune && tuned.autotune.rows.length > 0);
      assert.ok(tuned.autotune.rows.every((row) => row.source === "tuned"));
      const bench = parseBenchDocument(await Deno.readTextFile(`${out}/bench.json`), "b");
      assert.ok(bench.kernels?.length && bench.train?.length && bench.roofline);
      // The benchmarks ran with the tuned choices: the quick layers' keys carry them.
      for (const row of tuned.autotune.rows) {
        if (row.key in (bench.tileConfigs ?? {})) {
          assert.equal(bench.tileConfigs![row.key], row.choice, row.key);
        }
      }
      const cache = JSON.parse(await Deno.readTextFile(`${out}/autotune-cache.json`));
      assert.equal(cache.format, "fmnist-autotune");
      const metrics = JSON.parse(await Deno.readTextFile(`${out}/train-metrics.json`));
      assert.ok(
        metrics.accuracy >= 0 && metrics.accuracy <= 1,
        JSON.stringify(metrics).slice(0, 200),
      );
      const list = await new Deno.Command("tar", { args: ["-tzf", `${out}/train-run.tar.gz`] })
        .output();
      const files = new TextDecoder().decode(list.stdout);
      assert.match(files, /run-enhanced\/history\.json/);
      assert.match(files, /run-enhanced\/checkpoints\/best\/weights\.bin/);
      assert.doesNotMatch(files, /checkpoints\/last\/weights\.bin/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
