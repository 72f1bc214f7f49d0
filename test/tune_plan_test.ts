// Tune's plan folder and its bad inputs (no training here): --plan writes one config per trial
// at once; a plan of another version, a missing trial file, a trial index out of range, --slurm
// without sbatch, flags of another mode: one clear line each (exit 2), nothing written. And
// --slurm --dry-run writes a job-array script bash accepts, with the directives the issue asks.

import assert from "node:assert/strict";
import { main } from "../src/cmd/tune.ts";
import { UsageError } from "../src/errors.ts";
import { PLAN_VERSION, readPlan } from "../src/train/tune_plan.ts";
import { RESULT_FORMAT, RESULT_VERSION } from "../src/train/tune_trial.ts";
import { withFileLock } from "../src/shared_json_file.ts";

const SEARCH = [
  ...["--model", "baseline", "--limit", "200", "--lr", "1e-3,2e-3,4e-3", "--batch", "32"],
  ...["--dropout", "0", "--weight-decay", "0", "--epochs", "1"],
];

async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}

async function usageError(argv: string[], pattern: RegExp) {
  await assert.rejects(quietly(() => main(argv)), (e: Error) => {
    assert.ok(e instanceof UsageError, `${argv.join(" ")}: ${e.constructor.name} ${e.message}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    return true;
  });
}

/** Every path under `dir` with its size: "nothing written" compares two of these. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(`${p}/`, ...(await snapshot(p)));
    else out.push(`${p} ${(await Deno.stat(p)).size}`);
  }
  return out.sort();
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tune_plan_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tune --plan: plan.json and one config per trial, written at once", () =>
  withDir(async (dir) => {
    await quietly(() => main(["--plan", `${dir}/p`, ...SEARCH]));
    assert.deepEqual(await snapshot(dir).then((s) => s.map((l) => l.split(" ")[0])), [
      `${dir}/p/`,
      `${dir}/p/plan.json`,
      `${dir}/p/trial-000/`,
      `${dir}/p/trial-000/config.json`,
      `${dir}/p/trial-001/`,
      `${dir}/p/trial-001/config.json`,
      `${dir}/p/trial-002/`,
      `${dir}/p/trial-002/config.json`,
    ]);
    const plan = await readPlan(`${dir}/p`, "--plan");
    assert.deepEqual(plan.trials.map((t) => t.lr), [1e-3, 2e-3, 4e-3]);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/p/trial-002/config.json`));
    assert.equal(cfg.lr, 4e-3);
    assert.equal(cfg.limit, 200);
    assert.equal(cfg.model, "baseline");
    // Planning into it again is refused and changes nothing.
    const before = await snapshot(dir);
    await usageError(["--plan", `${dir}/p`, ...SEARCH], /--plan .*\/p: already holds a plan/);
    assert.deepEqual(await snapshot(dir), before);
  }));

Deno.test("tune: bad plans, indices and flags are one-line usage errors that write nothing", () =>
  withDir(async (dir) => {
    const p = `${dir}/p`;
    await quietly(() => main(["--plan", p, ...SEARCH]));
    const before = await snapshot(dir);
    const nothingWritten = async () => assert.deepEqual(await snapshot(dir), before);

    await usageError(
      ["--trial", "3", "--plan", p],
      /--trial 3: out of range; .* has 3 trials \(0\.\.2\)/,
    );
    await nothingWritten();
    await usageError(["--trial", "0"], /--trial: needs --plan DIR/);
    await usageError(["--trial", "0", "--plan", p, "--lr", "1"], /--lr: not with --trial/);
    await usageError(["--collect", p, "--quiet"], /--quiet: not with --collect/);
    await usageError(["--partition", "gpu", ...SEARCH], /--partition: not with a plain tune/);
    await usageError(["--trial", "0", "--plan", `${dir}/none`], /--plan .*none: no plan\.json/);
    await usageError(
      ["--collect", p],
      /--collect .*: no trial has finished yet \(missing: 0, 1, 2\)/,
    );
    await nothingWritten();

    // A trial file missing.
    await Deno.rename(`${p}/trial-001/config.json`, `${dir}/kept.json`);
    const gap = await snapshot(dir);
    await usageError(
      ["--trial", "1", "--plan", p],
      /trial-001\/config\.json: missing; the plan in .* is incomplete/,
    );
    await usageError(["--collect", p], /trial-001\/config\.json: missing/);
    assert.deepEqual(await snapshot(dir), gap);
    await Deno.rename(`${dir}/kept.json`, `${p}/trial-001/config.json`);

    // A plan written by another version.
    const planFile = `${p}/plan.json`;
    const plan = JSON.parse(await Deno.readTextFile(planFile));
    await Deno.writeTextFile(planFile, JSON.stringify({ ...plan, version: PLAN_VERSION + 1 }));
    const other = await snapshot(dir);
    await usageError(
      ["--trial", "0", "--plan", p],
      new RegExp(
        `plan\\.json: plan version ${PLAN_VERSION + 1}, this build reads version ${PLAN_VERSION}`,
      ),
    );
    await usageError(["--collect", p], /plan version/);
    await usageError(["--resume", p], /plan version/);
    assert.deepEqual(await snapshot(dir), other);
  }));

Deno.test("tune --trial: a trial another process holds is refused; a finished one does nothing", () =>
  withDir(async (dir) => {
    const p = `${dir}/p`;
    await quietly(() => main(["--plan", p, ...SEARCH]));
    await withFileLock(`${p}/trial-000/trial.lock`, async () => {
      const before = await snapshot(dir);
      await usageError(
        ["--trial", "0", "--plan", p],
        /--trial 0: .*trial-000 is being run by another process/,
      );
      assert.deepEqual(await snapshot(dir), before);
    });
    const result = {
      format: RESULT_FORMAT,
      version: RESULT_VERSION,
      ...{ lr: 2e-3, batch: 32, dropout: 0, weightDecay: 0, epochs: 1, trial: 1 },
      ...{ valAcc: 0.5, valLoss: 1.25, bestEpoch: 1, timeS: 1 },
    };
    await Deno.writeTextFile(`${p}/trial-001/result.json`, JSON.stringify(result));
    const before = await snapshot(dir);
    const lines: string[] = [];
    const log = console.log;
    console.log = (m: string) => lines.push(m);
    try {
      await main(["--trial", "1", "--plan", p]);
    } finally {
      console.log = log;
    }
    assert.deepEqual(lines, ["trial 1: finished before (val acc 0.5000); nothing to do"]);
    assert.deepEqual(await snapshot(dir), before);
  }));

Deno.test("tune --slurm: without sbatch on PATH a usage error before anything is written", () =>
  withDir(async (dir) => {
    const path = Deno.env.get("PATH") ?? "";
    Deno.env.set("PATH", `${dir}/empty`);
    try {
      await usageError(
        ["--slurm", ...SEARCH, "--out", `${dir}/s`],
        /--slurm: sbatch is not on PATH/,
      );
    } finally {
      Deno.env.set("PATH", path);
    }
    assert.deepEqual(await snapshot(dir), []);
  }));

Deno.test("tune --slurm --dry-run: a job-array script with requeue, SIGTERM lead and the collect job", () =>
  withDir(async (dir) => {
    const out = `${dir}/s`;
    await quietly(() =>
      main([
        ...[
          "--slurm",
          "--dry-run",
          "--partition",
          "gpu",
          "--max-parallel",
          "2",
          "--time",
          "1:00:00",
        ],
        ...SEARCH,
        ...["--out", out],
      ])
    );
    const script = await Deno.readTextFile(`${out}/slurm/trials.sbatch`);
    for (
      const line of [
        "#SBATCH --array=0-2%2",
        "#SBATCH --requeue",
        "#SBATCH --signal=TERM@120",
        "#SBATCH --partition=gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=1:00:00",
        `#SBATCH --output=${out}/slurm/trial-%a.log`,
        `#SBATCH --chdir=${Deno.cwd()}`,
      ]
    ) assert.ok(script.split("\n").includes(line), `${line} in\n${script}`);
    assert.match(
      script,
      /if \[ -x dist\/fmnist \]; then app=\(dist\/fmnist tune\); else app=\(deno task --quiet tune\); fi/,
    );
    assert.match(script, /srun "\$\{app\[@\]\}" --trial "\$SLURM_ARRAY_TASK_ID" --plan '.*\/s'/);
    assert.match(
      script,
      /if \[ "\$status" -eq 75 \]; then\n(.*\n)* {2}scontrol requeue "\$SLURM_JOB_ID"/,
    );
    const collect = await Deno.readTextFile(`${out}/slurm/collect.sbatch`);
    assert.match(collect, /"\$\{app\[@\]\}" --collect '.*\/s'/);
    assert.doesNotMatch(collect, /--gres|--array/);
    for (const file of ["trials.sbatch", "collect.sbatch"]) {
      const check = await new Deno.Command("bash", { args: ["-n", `${out}/slurm/${file}`] })
        .output();
      assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
    }
    assert.equal((await readPlan(out, "--plan")).trials.length, 3);
  }));
