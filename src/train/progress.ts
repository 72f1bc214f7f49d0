// Training progress output: a live bar redrawn in place on a terminal, a few plain lines per
// epoch when stdout is a pipe or file (CI logs, tests), nothing per step with --quiet.
// Every mode prints the one-line epoch summary.

import type { EpochRecord } from "./history.ts";

export interface StepInfo {
  epoch: number; // 1-based
  epochs: number;
  step: number; // 1-based within the epoch
  steps: number;
  loss: number; // running mean over the epoch so far
  acc: number;
  imagesPerS: number;
  etaS: number;
}

/** An epoch's history row, with the epoch count and whether it was the best so far. */
export type EpochSummary = EpochRecord & { epochs: number; best: boolean };

export interface Progress {
  step(info: StepInfo): void;
  epochEnd(s: EpochSummary): void;
  /** Clears a half-drawn bar before other output. */
  clear(): void;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const total = Math.max(0, Math.round(s));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const mm = String(m).padStart(h > 0 ? 2 : 1, "0");
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

export function formatStep(i: StepInfo, barWidth = 0): string {
  const bar = barWidth > 0
    ? ` [${"=".repeat(Math.floor((barWidth * i.step) / i.steps)).padEnd(barWidth, " ")}]`
    : "";
  return `epoch ${i.epoch}/${i.epochs}${bar} ${i.step}/${i.steps} loss ${i.loss.toFixed(4)} ` +
    `acc ${i.acc.toFixed(4)} ${i.imagesPerS.toFixed(0)} img/s ETA ${formatDuration(i.etaS)}`;
}

export function formatEpoch(s: EpochSummary): string {
  const val = Number.isNaN(s.valAcc)
    ? ""
    : ` val_loss ${s.valLoss.toFixed(4)} val_acc ${s.valAcc.toFixed(4)}`;
  return `epoch ${s.epoch}/${s.epochs} loss ${s.loss.toFixed(4)} acc ${s.acc.toFixed(4)}${val} ` +
    `lr ${s.lr.toPrecision(3)} ${s.epochTimeS.toFixed(1)}s${s.best ? " *best" : ""}`;
}

const encoder = new TextEncoder();

/** Chooses the output mode: quiet, a live bar on a terminal, plain lines otherwise. */
export function createProgress(opts: {
  quiet: boolean;
  tty?: boolean;
  write?: (text: string) => void;
}): Progress {
  const write = opts.write ?? ((t: string) => Deno.stdout.writeSync(encoder.encode(t)));
  const tty = opts.tty ?? Deno.stdout.isTerminal();
  let drawn = false;
  let lastDraw = 0;
  const clear = () => {
    if (drawn) write("\r\x1b[2K");
    drawn = false;
  };
  return {
    step(info) {
      if (opts.quiet) return;
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && info.step < info.steps) return; // at most 10 redraws/s
        lastDraw = now;
        write(`\r\x1b[2K${formatStep(info, 24)}`);
        drawn = true;
        return;
      }
      // Pipes and files: the first step (shows the run is alive) and each quarter of the epoch.
      const quarter = Math.max(1, Math.ceil(info.steps / 4));
      if (info.step === 1 || info.step % quarter === 0 || info.step === info.steps) {
        write(formatStep(info) + "\n");
      }
    },
    epochEnd(s) {
      clear();
      write(formatEpoch(s) + "\n");
    },
    clear,
  };
}
