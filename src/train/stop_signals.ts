// Stopping a training run cleanly on a signal: the first SIGINT (Ctrl-C) or SIGTERM asks the loop
// to stop after the current step (it saves checkpoints/last); a second Ctrl-C exits at once. A
// repeated SIGTERM is ignored: Slurm signals every process of a job step, and `deno task` passes
// the signal on to its child once more, so the trial gets two SIGTERMs for one stop request.
//
// SIGTERM is what schedulers send before they take the machine away: Slurm at preemption, at
// `--signal=TERM@<s>` before the time limit and on `scancel --signal=TERM`; Kubernetes, systemd
// and `docker stop` before their SIGKILL. After SIGTERM the process exits with REQUEUE_EXIT so a
// job script can tell "stopped early, checkpoint saved, run me again" from success (0), a failure
// (1) and a usage error (2).

/** Exit status after SIGINT (128 + 2, the shell convention for "killed by Ctrl-C"). */
export const INTERRUPTED_EXIT = 130;

/**
 * Exit status after SIGTERM: 75 is EX_TEMPFAIL of sysexits.h ("temporary failure, the user is
 * invited to retry"), the status Slurm's `RequeueExit=75`, systemd's `RestartForceExitStatus=75`
 * and the job script that `tune --slurm` writes read as "requeue me".
 */
export const REQUEUE_EXIT = 75;

export type StopSignal = "SIGINT" | "SIGTERM";

const SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

export function exitStatusAfter(signal: StopSignal): number {
  return signal === "SIGTERM" ? REQUEUE_EXIT : INTERRUPTED_EXIT;
}

/**
 * Runs `fn` with SIGINT and SIGTERM listeners installed. `fn` polls `stopRequested()` after each
 * step; the signal that asked for the stop (if any) is returned with `fn`'s value.
 */
export async function withStopSignals<T>(
  fn: (stopRequested: () => boolean) => Promise<T>,
  log: (m: string) => void = (m) => console.error(m),
): Promise<{ value: T; signal: StopSignal | null }> {
  let signal: StopSignal | null = null;
  const listeners = SIGNALS.map((sig) => {
    const listener = () => {
      if (signal === null) {
        signal = sig;
        log(`\n${sig}: finishing the current step, then saving checkpoints/last ...`);
      } else if (sig === "SIGINT") {
        Deno.exit(exitStatusAfter(signal)); // second Ctrl-C: give up at once
      }
    };
    Deno.addSignalListener(sig, listener);
    return [sig, listener] as const;
  });
  try {
    const value = await fn(() => signal !== null);
    return { value, signal };
  } finally {
    for (const [sig, listener] of listeners) Deno.removeSignalListener(sig, listener);
  }
}
