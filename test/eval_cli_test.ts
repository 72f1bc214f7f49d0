// End to end with a real (untrained) CNN checkpoint: `fmnist eval` and `fmnist predict` as
// subprocesses, and the bad-checkpoint cases through the command's main().

import assert from "node:assert/strict";
import { encode } from "fast-png";
import { UsageError } from "../src/errors.ts";
import { main as evalMain } from "../src/cmd/eval.ts";
import { loadFashionMnist, PIXELS } from "../src/data/fashion_mnist.ts";
import { createModel } from "../src/model/model.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { initTf } from "../src/tf/setup.ts";
import { LOCAL_DATA_DIR, needsRealData } from "./helpers/data_fixtures.ts";
import { fmnist } from "./helpers/cli.ts";

async function makeRun(): Promise<string> {
  await initTf("cpu");
  const runDir = await Deno.makeTempDir({ prefix: "fmnist-eval-cli-" });
  const model = createModel("baseline", { ops: "stock", seed: 3 });
  try {
    await saveCheckpoint(`${runDir}/checkpoints/best`, model, {
      config: { model: "baseline", epochs: 0 },
    });
  } finally {
    model.dispose();
  }
  return runDir;
}

Deno.test("eval and predict CLIs on a real checkpoint (cpu backend, 64 images)", {
  ignore: needsRealData("eval and predict CLIs on a real checkpoint (cpu backend, 64 images)"),
}, async () => {
  const runDir = await makeRun();
  try {
    const ev = await fmnist(
      ...["eval", "--run", runDir, "--limit", "64", "--backend", "cpu", "--data", LOCAL_DATA_DIR!],
    );
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, /macro avg/);
    const metrics = JSON.parse(await Deno.readTextFile(`${runDir}/metrics.json`));
    assert.equal(metrics.n, 64);
    assert.ok((await Deno.stat(`${runDir}/report.html`)).size > 10_000);

    const test = (await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false })).test;
    const png = encode({
      width: 28,
      height: 28,
      data: test.images.subarray(0, PIXELS),
      channels: 1,
      depth: 8,
    });
    await Deno.writeFile(`${runDir}/garment.png`, png);
    const pr = await fmnist(
      "predict",
      "--run",
      runDir,
      "--backend",
      "cpu",
      `${runDir}/garment.png`,
    );
    assert.equal(pr.code, 0, pr.stderr);
    assert.match(pr.stdout, /garment\.png\s+1\. .+ 0\.\d{3}\s+2\. .+\s+3\. /);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("eval: corrupt, foreign and missing checkpoints are one-line UsageErrors", async () => {
  const runDir = await makeRun();
  const ck = `${runDir}/checkpoints/best`;
  const expectUsage = async (args: string[], message: RegExp) => {
    await assert.rejects(evalMain([...args, "--backend", "cpu", "--limit", "8"]), (e: Error) => {
      assert.ok(e instanceof UsageError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  };
  try {
    // Another model's checkpoint: the variables do not match.
    const meta = JSON.parse(await Deno.readTextFile(`${ck}/checkpoint.json`));
    await Deno.writeTextFile(
      `${ck}/checkpoint.json`,
      JSON.stringify({
        ...meta,
        model: "wide",
        modelConfig: { ...meta.modelConfig, name: "wide" },
      }),
    );
    await expectUsage(["--run", runDir], /a different model/);
    // Corrupt: truncated weights, then garbage JSON.
    await Deno.writeTextFile(`${ck}/checkpoint.json`, JSON.stringify(meta));
    await Deno.truncate(`${ck}/weights.bin`, 100);
    await expectUsage(["--checkpoint", ck], /weights\.bin: corrupt/);
    await Deno.writeTextFile(`${ck}/checkpoint.json`, "{ not json");
    await expectUsage(["--run", runDir], /checkpoint\.json: corrupt/);
    // Empty run folder and missing folder.
    await Deno.remove(`${runDir}/checkpoints`, { recursive: true });
    await expectUsage(["--run", runDir], /no checkpoint found/);
    await expectUsage(["--run", `${runDir}/nope`], /no such run folder/);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
