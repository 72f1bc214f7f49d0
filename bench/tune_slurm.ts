// The same 3-trial search in one process and as a Slurm job array on a local single-node cluster
// (scripts/local_slurm.ts): wall time of each, and the scheduler's overhead per trial.
//
//   deno run -A bench/tune_slurm.ts [--rounds 3]
//
// Per round, alternating: `tune` (every trial in one process), the array with one task at a time
// (`--max-parallel 1`: the same sequence of trials, so the difference is what running each trial
// as its own job costs) and the array with two at once. Wall time is from launching the command
// to the last job leaving the queue (the collect job included). Overhead per trial = (array with
// one task at a time - in one process) / trials: Slurm's dispatch plus each task's own start
// (Deno, tfjs and the WebGPU adapter, reading Fashion-MNIST), which the single process pays once.

import { dirname } from "node:path";
import { parseFlags } from "../src/cli/args.ts";
import { startLocalSlurm } from "../scripts/local_slurm.ts";
import { median } from "../src/stats.ts";

const flags = parseFlags(Deno.args, {
  rounds: { type: "int", min: 1, default: 3, help: "alternating rounds" },
  data: { type: "string", default: "/usr/share/datasets/fashion-mnist", help: "data folder" },
});

const SEARCH = [
  ...["--backend", "webgpu", "--model", "baseline", "--limit", "1000", "--val-split", "0.25"],
  ...["--lr", "1e-3,3e-3,1e-2", "--batch", "16", "--dropout", "0", "--weight-decay", "0"],
  ...["--epochs", "2", "--seed", "7", "--quiet", "--data", flags.data],
];
const TRIALS = 3;

const slurm = await startLocalSlurm();
const env = { ...slurm.env, PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH")}` };
const root = await Deno.makeTempDir({ prefix: "bench_tune_slurm_" });

async function tune(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/main.ts", "tune", ...SEARCH, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(text + new TextDecoder().decode(out.stderr));
  return text;
}

async function queueEmpty() {
  while ((await slurm.run("squeue", ["-h", "-o", "%A"])).trim() !== "") {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Training seconds the trials report (result.json timeS), summed. */
async function trainingS(dir: string): Promise<number> {
  let s = 0;
  for (let i = 0; i < TRIALS; i++) {
    s += JSON.parse(await Deno.readTextFile(`${dir}/trial-00${i}/result.json`)).timeS;
  }
  return s;
}

const rows: Record<string, { wall: number[]; train: number[] }> = {
  "in one process": { wall: [], train: [] },
  "array, 1 at a time": { wall: [], train: [] },
  "array, 2 at a time": { wall: [], train: [] },
};
/** Seconds from launching `tune --slurm` to the first array task's script starting. */
const firstStart: number[] = [];

/** When task `i`'s script started (the line the job script prints first). */
async function taskStart(dir: string, i: number): Promise<number> {
  const log = await Deno.readTextFile(`${dir}/slurm/trial-${i}.log`);
  return Date.parse(log.match(/restart 0, (\S+Z)/)![1]);
}

try {
  for (let round = 0; round < flags.rounds; round++) {
    for (
      const [name, extra] of [
        ["in one process", []],
        ["array, 1 at a time", ["--slurm", "--gpus-per-trial", "0", "--max-parallel", "1"]],
        ["array, 2 at a time", ["--slurm", "--gpus-per-trial", "0", "--max-parallel", "2"]],
      ] as const
    ) {
      const dir = `${root}/${round}-${name.replace(/\W+/g, "-")}`;
      const t0 = performance.now();
      const launched = Date.now();
      await tune([...extra, "--out", dir]);
      if (extra.length) await queueEmpty();
      const wall = (performance.now() - t0) / 1000;
      rows[name].wall.push(wall);
      rows[name].train.push(await trainingS(dir));
      if (extra.length) firstStart.push((await taskStart(dir, 0) - launched) / 1000);
      console.log(`round ${round + 1} ${name}: ${wall.toFixed(1)} s`);
    }
  }
} finally {
  await slurm.stop();
  await Deno.remove(root, { recursive: true });
}

console.log(`\n${TRIALS} trials, median of ${flags.rounds} rounds`);
console.log("| run | wall s | training s (sum of trials) |");
console.log("| --- | --- | --- |");
for (const [name, r] of Object.entries(rows)) {
  console.log(`| ${name} | ${median(r.wall).toFixed(1)} | ${median(r.train).toFixed(1)} |`);
}
const overhead = (median(rows["array, 1 at a time"].wall) - median(rows["in one process"].wall)) /
  TRIALS;
console.log(`scheduler + per-task start overhead: ${overhead.toFixed(1)} s per trial`);
console.log(
  `launch of tune --slurm to the first task's start: median ${median(firstStart).toFixed(1)} s ` +
    `(planning, two sbatch calls, Slurm's dispatch)`,
);
