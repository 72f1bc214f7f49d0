// `tune --slurm` against a real Slurm started here (scripts/local_slurm.ts): a 3-trial search
// runs as a job array, one task is sent SIGTERM mid-epoch (`scancel --signal=TERM`) and requeued,
// the dependent collect job ranks the results, and every trial's validation accuracy and loss,
// and the ranking, equal the same search run in one process. Ignored, the reason printed, where
// Slurm's packages or root are missing.

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { localSlurmUnavailable, startLocalSlurm } from "../scripts/local_slurm.ts";
import { LOCAL_DATA_DIR } from "./helpers/data_fixtures.ts";

const NAME = "tune --slurm: a job array with one SIGTERM'd, requeued trial ranks like in-process";

function ignoreReason(): string | null {
  if (!LOCAL_DATA_DIR) return "no Fashion-MNIST (apt install dataset-fashion-mnist)";
  return localSlurmUnavailable();
}

const reason = ignoreReason();
if (reason) console.log(`ignored: ${NAME} (${reason})`);

/** 750 training images at batch 16: 47 steps an epoch, long enough to be stopped mid-epoch. */
const SEARCH = [
  ...["--backend", "webgpu", "--model", "baseline", "--limit", "1000", "--val-split", "0.25"],
  ...["--lr", "1e-3,3e-3,1e-2", "--batch", "16", "--dropout", "0", "--weight-decay", "0"],
  ...["--epochs", "2", "--seed", "7", "--quiet"],
];

async function tune(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/main.ts", "tune", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

async function poll(what: string, ok: () => Promise<boolean>, timeoutMs: number) {
  const end = performance.now() + timeoutMs;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const readOr = (path: string) => Deno.readTextFile(path).catch(() => "");

async function trialResults(dir: string) {
  return await Promise.all([0, 1, 2].map(async (i) => {
    const r = JSON.parse(await Deno.readTextFile(`${dir}/trial-00${i}/result.json`));
    return { trial: r.trial, lr: r.lr, valAcc: r.valAcc, valLoss: r.valLoss, best: r.bestEpoch };
  }));
}

const ranking = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/results.csv`)).trim().split("\n").slice(1)
    .map((l) => l.split(",").slice(0, 3).join(","));

Deno.test({ name: NAME, ignore: reason !== null }, async () => {
  const root = await Deno.makeTempDir({ prefix: "tune_slurm_" });
  const slurm = await startLocalSlurm();
  // The tasks run `deno task`: the deno running this test, wherever it lives (CI gets it via npx).
  const env = {
    ...slurm.env,
    PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
  };
  try {
    const data = ["--data", LOCAL_DATA_DIR!];
    const submitted = await tune(
      [
        ...SEARCH,
        ...data,
        "--slurm",
        "--gpus-per-trial",
        "0",
        "--max-parallel",
        "2",
        "--out",
        `${root}/array`,
      ],
      env,
    );
    const arrayId = submitted.match(/submitted job array (\d+)/)?.[1];
    assert.ok(arrayId, submitted);
    const dir = `${root}/array`;

    // Trial 0: SIGTERM once it has printed its first step (non-TTY progress prints step 1).
    const log0 = `${dir}/slurm/trial-0.log`;
    await poll(
      "trial 0 started its first epoch",
      async () => /epoch 1\/2 1\/47 /.test(await readOr(log0)),
      60_000,
    );
    await slurm.run("scancel", ["--signal=TERM", `${arrayId}_0`]);
    // Requeued tasks wait ~2 minutes (Slurm's BeginTime after a requeue); a real cluster just
    // waits, the test lets it go at once.
    await poll(
      "trial 0 requeued",
      async () =>
        (await slurm.run("squeue", ["-h", "-j", `${arrayId}_0`, "-o", "%T %r"])).includes(
          "BeginTime",
        ),
      60_000,
    );
    await slurm.run("scontrol", ["update", `JobId=${arrayId}_0`, "StartTime=now"]);
    await poll(
      "the array and the collect job finished",
      async () => (await slurm.run("squeue", ["-h", "-o", "%A"])).trim() === "",
      120_000,
    );

    const log = await readOr(log0);
    assert.match(log, /interrupted \(SIGTERM\): saved .*trial-000\/checkpoints\/last/);
    assert.match(log, /stopped by SIGTERM, checkpoint saved; requeueing/);
    assert.match(log, /restart 1,/);
    const resumedAt = log.match(
      /resuming trial 0 from checkpoints\/last at epoch (\d+), step (\d+)/,
    );
    assert.ok(resumedAt, log);
    assert.ok(Number(resumedAt[2]) > 0 && Number(resumedAt[2]) < 47, `mid-epoch: ${resumedAt[0]}`);
    const collectLog = await readOr(`${dir}/slurm/collect.log`);
    assert.match(collectLog, /best: trial \d/);
    assert.doesNotMatch(collectLog, /missing/);

    // The same search in one process, same seeds.
    await tune([...SEARCH, ...data, "--out", `${root}/here`]);
    assert.deepEqual(await trialResults(dir), await trialResults(`${root}/here`));
    assert.deepEqual(await ranking(dir), await ranking(`${root}/here`));
    assert.equal(
      await Deno.readTextFile(`${dir}/best-config.json`),
      await Deno.readTextFile(`${root}/here/best-config.json`),
    );
  } finally {
    await slurm.stop();
    await Deno.remove(root, { recursive: true });
  }
});
