// `tune --slurm`: the batch scripts that run a plan's trials as a Slurm job array, one trial per
// array task, and the job that collects the results once every task has ended; and submitting
// them with sbatch.
//
// Preemption and time limits: `--signal=TERM@<lead>` has Slurm send SIGTERM to the trial that
// long before the time limit, preemption and `scancel --signal=TERM` send it too; the trial then
// saves checkpoints/last and exits with REQUEUE_EXIT (75), and the script asks for a requeue, so
// the task starts again later and resumes from the checkpoint. `--requeue` allows that, and lets
// Slurm requeue the task itself after a node failure.

import { REQUEUE_EXIT } from "../train/stop_signals.ts";

/**
 * Seconds between the SIGTERM and the time limit: one training step plus saving a checkpoint.
 * A step of `enhanced` at batch 128 takes about 2 s on a 2-core software adapter and well under
 * 0.1 s on a GPU; a checkpoint is a few MB: two minutes leave room for slow shared disks.
 */
export const SIGNAL_LEAD_S = 120;

export interface SlurmJob {
  /** Absolute plan folder. */
  planDir: string;
  trials: number;
  /** Array tasks running at once (the `%K` of `--array`). */
  maxParallel: number;
  /** Absolute folder the tasks start in: the checkout with dist/fmnist or src/main.ts. */
  workDir: string;
  partition?: string;
  gpusPerTrial: number;
  /** Slurm `--time` per trial, e.g. "2:00:00". */
  time?: string;
  cpusPerTrial?: number;
  jobName: string;
}

/** Single-quotes `s` for bash. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function directives(job: SlurmJob, own: string[], perTrial: boolean): string[] {
  const lines = [...own, `--chdir=${job.workDir}`];
  if (job.partition) lines.push(`--partition=${job.partition}`);
  if (perTrial && job.gpusPerTrial > 0) lines.push(`--gres=gpu:${job.gpusPerTrial}`);
  if (job.time && perTrial) lines.push(`--time=${job.time}`);
  if (job.cpusPerTrial && perTrial) lines.push(`--cpus-per-task=${job.cpusPerTrial}`);
  // sbatch stops reading directives at the first command, and does not unquote: no spaces.
  return lines.map((l) => `#SBATCH ${l}`);
}

/**
 * The command that runs the app: the compiled dist/fmnist when the checkout has one (no Deno
 * needed on the nodes), else `deno task`, which passes SIGTERM on to the app and returns its
 * exit status.
 */
const PICK_APP = [
  "if [ -x dist/fmnist ]; then app=(dist/fmnist tune); else app=(deno task --quiet tune); fi",
];

/** The job-array script: task I runs `tune --trial I --plan DIR`. */
export function arrayScript(job: SlurmJob): string {
  const dir = shellQuote(job.planDir);
  return [
    "#!/bin/bash",
    `# One trial of the plan in ${job.planDir} per array task (written by tune --slurm).`,
    ...directives(job, [
      `--job-name=${job.jobName}`,
      `--array=0-${job.trials - 1}%${job.maxParallel}`,
      "--requeue",
      `--signal=TERM@${SIGNAL_LEAD_S}`,
      "--open-mode=append",
      `--output=${job.planDir}/slurm/trial-%a.log`,
    ], true),
    "set -u",
    'echo "trial $SLURM_ARRAY_TASK_ID: job $SLURM_JOB_ID on $(hostname), restart ' +
    '${SLURM_RESTART_COUNT:-0}, $(date -u +%FT%T.%3NZ)"',
    ...PICK_APP,
    `srun "\${app[@]}" --trial "$SLURM_ARRAY_TASK_ID" --plan ${dir}`,
    "status=$?",
    `if [ "$status" -eq ${REQUEUE_EXIT} ]; then`,
    "  # SIGTERM (time limit near, preemption, scancel --signal=TERM): checkpoint saved, run again.",
    '  echo "trial $SLURM_ARRAY_TASK_ID: stopped by SIGTERM, checkpoint saved; requeueing"',
    '  scontrol requeue "$SLURM_JOB_ID"',
    "fi",
    'exit "$status"',
    "",
  ].join("\n");
}

/** The collect job, submitted with `--dependency=afterany:<array job>`. */
export function collectScript(job: SlurmJob): string {
  return [
    "#!/bin/bash",
    `# Ranks the trials of ${job.planDir} once the array has ended (written by tune --slurm).`,
    ...directives(job, [
      `--job-name=${job.jobName}-collect`,
      `--output=${job.planDir}/slurm/collect.log`,
    ], false),
    "set -u",
    ...PICK_APP,
    `"\${app[@]}" --collect ${shellQuote(job.planDir)}`,
    "",
  ].join("\n");
}

/** The path of `cmd` on $PATH, or null. */
export async function findOnPath(cmd: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = await Deno.stat(`${dir}/${cmd}`);
      if (st.isFile && (st.mode ?? 0o111) & 0o111) return `${dir}/${cmd}`;
    } catch { /* not here */ }
  }
  return null;
}

/** `sbatch --parsable ARGS SCRIPT`; returns the job id. */
export async function sbatch(script: string, args: string[] = []): Promise<string> {
  const out = await new Deno.Command("sbatch", {
    args: ["--parsable", ...args, script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    throw new Error(`sbatch ${script} failed: ${err || `exit status ${out.code}`}`);
  }
  return text.split(";")[0]; // "<id>" or "<id>;<cluster>"
}
