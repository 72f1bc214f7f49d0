// A throwaway single-node Slurm cluster on localhost: munged, slurmctld and slurmd started in a
// temporary folder with a config written on the spot, for the job-array test and benchmark (and
// to try `tune --slurm` on one machine: `deno run -A scripts/local_slurm.ts` starts one, prints
// the SLURM_CONF to export, and stops it on Ctrl-C).
//
// Debian's slurm 22.05 packages (slurmctld slurmd slurm-client munge) run this way as root with
// ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed), the node named
// after the host. Ports are picked free at start, so it does not clash with a real cluster or
// another test run.

const DAEMONS = ["munged", "slurmctld", "slurmd"] as const;
const CLIENTS = ["sbatch", "squeue", "scontrol", "scancel", "sinfo"] as const;
const SEARCH_PATH = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

export interface LocalSlurm {
  dir: string;
  /** Environment for Slurm's commands (SLURM_CONF) and the jobs they submit. */
  env: Record<string, string>;
  /** Runs a Slurm command against this cluster; throws with its stderr when it fails. */
  run(cmd: string, args: string[]): Promise<string>;
  /** Cancels every job, waits for them to go, stops the daemons, removes the folder. */
  stop(): Promise<void>;
}

function which(cmd: string): string | null {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), ...SEARCH_PATH];
  for (const d of dirs) {
    try {
      if (d && Deno.statSync(`${d}/${cmd}`).isFile) return `${d}/${cmd}`;
    } catch { /* next */ }
  }
  return null;
}

/** Why a local cluster cannot start here (missing packages, not root), or null when it can. */
export function localSlurmUnavailable(): string | null {
  const missing = [...DAEMONS, ...CLIENTS].filter((c) => which(c) === null);
  if (missing.length) {
    return `no ${missing.join(", ")} (apt-get install slurmctld slurmd slurm-client munge)`;
  }
  if (Deno.uid() !== 0) return "needs root (the local cluster runs with SlurmUser=root)";
  return null;
}

/** Two distinct free ports (both listeners held until both are known, so they differ). */
function freePorts(): [number, number] {
  const ls = [0, 1].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return [ports[0], ports[1]];
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number) {
  const end = performance.now() + timeoutMs;
  while (!(await ok())) {
    if (performance.now() > end) throw new Error(`local slurm: ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function slurmConf(dir: string, node: string, ports: [number, number]): string {
  return [
    "ClusterName=fmnistlocal",
    `SlurmctldHost=${node}(127.0.0.1)`,
    `SlurmctldPort=${ports[0]}`,
    `SlurmdPort=${ports[1]}`,
    "SlurmUser=root",
    "SlurmdUser=root",
    "AuthType=auth/munge",
    "CredType=cred/munge",
    `AuthInfo=socket=${dir}/munge.sock`,
    `StateSaveLocation=${dir}/state`,
    `SlurmdSpoolDir=${dir}/spool`,
    `SlurmctldPidFile=${dir}/slurmctld.pid`,
    `SlurmdPidFile=${dir}/slurmd.pid`,
    `SlurmctldLogFile=${dir}/slurmctld.log`,
    `SlurmdLogFile=${dir}/slurmd.log`,
    "ProctrackType=proctrack/linuxproc",
    "TaskPlugin=task/none",
    "MpiDefault=none",
    // One CPU per task, so a 2-core node runs two array tasks at once.
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_CPU",
    "SchedulerType=sched/backfill",
    "ReturnToService=2",
    "JobCompType=jobcomp/none",
    "AccountingStorageType=accounting_storage/none",
    `NodeName=${node} NodeAddr=127.0.0.1 CPUs=${navigator.hardwareConcurrency} State=UNKNOWN`,
    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    "",
  ].join("\n");
}

/** Starts the cluster; throws (after cleaning up) with the daemons' last log lines on failure. */
export async function startLocalSlurm(): Promise<LocalSlurm> {
  const reason = localSlurmUnavailable();
  if (reason) throw new Error(`local slurm: ${reason}`);
  const dir = await Deno.makeTempDir({ prefix: "fmnist-slurm-" });
  await Deno.chmod(dir, 0o755); // munged wants its socket's folder searchable by all
  for (const sub of ["state", "spool"]) await Deno.mkdir(`${dir}/${sub}`);
  const key = crypto.getRandomValues(new Uint8Array(1024));
  await Deno.writeFile(`${dir}/munge.key`, key, { mode: 0o400 });
  const node = Deno.hostname().split(".")[0];
  await Deno.writeTextFile(
    `${dir}/slurm.conf`,
    slurmConf(dir, node, freePorts()),
  );
  const env = { SLURM_CONF: `${dir}/slurm.conf` };
  const children: Deno.ChildProcess[] = [];
  const spawn = (cmd: string, args: string[]) => {
    children.push(
      new Deno.Command(which(cmd)!, { args, env, stdout: "null", stderr: "null" }).spawn(),
    );
  };

  const run = async (cmd: string, args: string[]): Promise<string> => {
    const out = await new Deno.Command(which(cmd)!, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return text;
  };

  const stopDaemons = async () => {
    for (const child of children.reverse()) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await child.status;
      clearTimeout(timer);
    }
  };

  const stop = async () => {
    try {
      // Jobs first: their steps run under slurmstepd, which outlives slurmd.
      const ids = (await run("squeue", ["-h", "-o", "%A"])).split("\n").filter((s) => s);
      if (ids.length) {
        await run("scancel", ids).catch(() => {});
        await until(
          "jobs still there",
          async () => (await run("squeue", ["-h", "-o", "%A"]).catch(() => "")).trim() === "",
          15_000,
        )
          .catch(() => {});
      }
    } catch { /* controller already down */ }
    await stopDaemons();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  try {
    spawn("munged", [
      "-F",
      "--force",
      `--key-file=${dir}/munge.key`,
      `--socket=${dir}/munge.sock`,
      `--pid-file=${dir}/munged.pid`,
      `--log-file=${dir}/munged.log`,
      `--seed-file=${dir}/munged.seed`,
    ]);
    await until(
      "munged did not create its socket",
      () => Deno.stat(`${dir}/munge.sock`).then(() => true, () => false),
      10_000,
    );
    spawn("slurmctld", ["-D", "-f", env.SLURM_CONF]);
    spawn("slurmd", ["-D", "-f", env.SLURM_CONF]);
    await until("the node did not come up idle", async () => {
      const state = await run("sinfo", ["-h", "-o", "%t"]).catch(() => "");
      return state.trim() === "idle";
    }, 30_000);
  } catch (e) {
    const logs = await Promise.all(
      ["munged.log", "slurmctld.log", "slurmd.log"].map((f) =>
        Deno.readTextFile(`${dir}/${f}`).then(
          (t) => `${f}: ${t.trim().split("\n").slice(-3).join(" | ")}`,
          () => `${f}: none`,
        )
      ),
    );
    await stopDaemons();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`${(e as Error).message}\n${logs.join("\n")}`);
  }
  return { dir, env, run, stop };
}

if (import.meta.main) {
  const slurm = await startLocalSlurm();
  console.log(`local Slurm cluster up (stop with Ctrl-C); in another shell:`);
  console.log(`  export SLURM_CONF=${slurm.env.SLURM_CONF}`);
  const stopped = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => stopped.resolve());
  await stopped.promise;
  await slurm.stop();
  Deno.exit(0);
}
