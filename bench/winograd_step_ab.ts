// Training-step A/B of the tuner's Winograd choices, in one process: the autotune cache's choice
// per conv problem ("tuned") against the same cache with every Winograd choice replaced by the
// entry's fastest direct config ("direct"), steps alternating after a warm-up of each. Fill the
// cache first (`deno task bench --suite autotune --batches BATCH`).
//
//   FMNIST_AUTOTUNE_CACHE=<file> deno run -A bench/winograd_step_ab.ts [BATCH] [STEPS] [MODEL]
//
// Prints wall ms per step (to the read-back of loss and accuracy) and process CPU ms per step
// (all llvmpipe threads: steadier on a loaded machine), each with its median.

import process from "node:process";
import { describeAdapter, initTf } from "../src/tf/setup.ts";
import { fixedBatchStep } from "./step_fixture.ts";
import { openTuneSession } from "../src/train/autotune_model.ts";
import { configById, type TileConfig } from "../src/ops/conv/tiling.ts";
import { tilePlan } from "../src/ops/conv/tile_plan.ts";
const adapter = await initTf("webgpu");
const batch = Number(Deno.args[0] ?? 128), steps = Number(Deno.args[1] ?? 3);
const modelName = (Deno.args[2] ?? "enhanced") as "enhanced" | "baseline";
const session = (await openTuneSession())!;
const entries = session.cache.entries(session.adapter);
const tables: Record<string, Map<string, TileConfig>> = { tuned: new Map(), direct: new Map() };
for (const [key, e] of Object.entries(entries)) {
  if (!/^(fwd|bwdData|bwdFilter):/.test(key)) continue;
  tables.tuned.set(key, configById(e.choice)!);
  const direct = Object.entries(e.timings).filter(([id, ms]) =>
    ms !== null && !id.includes(".wino2.")
  )
    .sort((a, b) => a[1]! - b[1]!)[0][0];
  tables.direct.set(key, configById(direct)!);
}
const { model, step } = fixedBatchStep(modelName, batch);
const run = async () => {
  const c0 = process.cpuUsage();
  const { wallMs } = await step();
  const cu = process.cpuUsage(c0);
  return { wall: wallMs, cpu: (cu.user + cu.system) / 1000 };
};
const res: Record<string, { wall: number; cpu: number }[]> = { tuned: [], direct: [] };
for (const name of ["tuned", "direct"]) {
  model.tiles = tilePlan(session.kind, { conv: tables[name] });
  await run();
}
for (let r = 0; r < steps; r++) {
  for (const name of ["direct", "tuned"]) {
    model.tiles = tilePlan(session.kind, { conv: tables[name] });
    res[name].push(await run());
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
console.log(describeAdapter(adapter), modelName, "batch", batch);
for (const [name, rs] of Object.entries(res)) {
  console.log(
    name,
    "wall ms",
    rs.map((r) => Math.round(r.wall)).join(" "),
    "median",
    Math.round(med(rs.map((r) => r.wall))),
    "images/s",
    (batch / (med(rs.map((r) => r.wall)) / 1000)).toFixed(1),
    "cpu ms",
    rs.map((r) => Math.round(r.cpu)).join(" "),
    "median",
    Math.round(med(rs.map((r) => r.cpu))),
  );
}
