// Progress output: live bar on a terminal, sparse lines in logs, nothing per step when quiet.

import assert from "node:assert/strict";
import { createProgress, formatDuration, type StepInfo } from "../src/train/progress.ts";
import { humanDuration } from "../src/train/estimate.ts";

const info = (step: number): StepInfo => ({
  epoch: 2,
  epochs: 5,
  step,
  steps: 8,
  loss: 0.5,
  acc: 0.75,
  imagesPerS: 1234.4,
  etaS: 65,
});
const summary = {
  epoch: 2,
  epochs: 5,
  loss: 0.5,
  acc: 0.75,
  valLoss: 0.6,
  valAcc: 0.7,
  lr: 1e-3,
  epochTimeS: 12.3,
  best: true,
};

function capture(opts: { quiet: boolean; tty: boolean }) {
  const out: string[] = [];
  const p = createProgress({ ...opts, write: (t) => out.push(t) });
  for (let s = 1; s <= 8; s++) p.step(info(s));
  p.epochEnd(summary);
  return out;
}

Deno.test("progress: durations", () => {
  assert.equal(formatDuration(65), "1:05");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(humanDuration(15191), "4 h 13 min");
  assert.equal(humanDuration(195), "3 min 15 s");
});

Deno.test("progress: log lines at the first step and each quarter; quiet keeps only summaries", () => {
  const log = capture({ quiet: false, tty: false });
  assert.deepEqual(log.slice(0, -1).map((l) => l.match(/ (\d)\/8 /)?.[1]), [
    "1",
    "2",
    "4",
    "6",
    "8",
  ]);
  assert.equal(log[0], "epoch 2/5 1/8 loss 0.5000 acc 0.7500 1234 img/s ETA 1:05\n");
  assert.equal(
    log.at(-1),
    "epoch 2/5 loss 0.5000 acc 0.7500 val_loss 0.6000 val_acc 0.7000 lr 0.00100 12.3s *best\n",
  );
  assert.deepEqual(capture({ quiet: true, tty: false }), [log.at(-1)]);
});

Deno.test("progress: the terminal bar redraws in place and is cleared before the summary", () => {
  const tty = capture({ quiet: false, tty: true });
  assert.ok(tty[0].startsWith("\r\x1b[2Kepoch 2/5 [===") && !tty[0].endsWith("\n"));
  assert.ok(tty.some((t) => t.includes("[========================] 8/8")), "last step drawn");
  assert.equal(tty.at(-2), "\r\x1b[2K");
  assert.ok(tty.at(-1)!.endsWith("*best\n"));
});
