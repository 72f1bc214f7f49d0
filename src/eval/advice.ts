// "What to try next": a short list of suggestions derived from the test metrics and the training
// history. Thresholds are rules of thumb for Fashion-MNIST (good CNNs reach 0.92-0.94 accuracy;
// Shirt / T-shirt / Pullover / Coat are the classic hard group).

import type { HistoryEntry } from "./charts.ts";
import type { ClassificationMetrics } from "./metrics.ts";

/** Train-minus-validation accuracy above this suggests overfitting. */
export const OVERFIT_GAP = 0.03;
/** A class whose recall is this far below the mean recall is called out. */
export const LOW_RECALL_MARGIN = 0.05;

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

export function suggestions(
  m: ClassificationMetrics,
  history: readonly HistoryEntry[] = [],
): string[] {
  const out: string[] = [];
  const errors = m.n - Math.round(m.accuracy * m.n);
  // Pairs confused in either direction, so "Shirt <-> T-shirt/top" counts both cells.
  const pairs = new Map<string, { a: string; b: string; count: number }>();
  for (const c of m.topConfusions) {
    const [a, b] = [c.trueName, c.predictedName].sort();
    const key = `${a}\u0000${b}`;
    const p = pairs.get(key) ?? { a, b, count: 0 };
    p.count += c.count;
    pairs.set(key, p);
  }
  const top = [...pairs.values()].sort((x, y) => y.count - x.count).slice(0, 3);
  if (top.length > 0 && errors > 0) {
    const list = top.map((p) => `${p.a} <-> ${p.b} (${p.count})`).join(", ");
    const share = top.reduce((a, p) => a + p.count, 0) / errors;
    out.push(
      `Most confused pairs: ${list}, ${pct(share)} of all errors. Focus there: augmentation ` +
        `that keeps the telling details (small shifts, no flips that change sleeves/collars), ` +
        `more capacity in the last conv block, or look at the misclassified grid for label noise.`,
    );
  }
  const meanRecall = m.macro.recall;
  const weak = m.perClass.filter((c) => c.support > 0 && c.recall < meanRecall - LOW_RECALL_MARGIN)
    .sort((a, b) => a.recall - b.recall);
  if (weak.length > 0) {
    out.push(
      `Low recall: ${weak.map((c) => `${c.name} ${c.recall.toFixed(3)}`).join(", ")} ` +
        `(mean ${meanRecall.toFixed(3)}). Consider class-weighted loss or oversampling these ` +
        `classes, and check which class absorbs them in the confusion matrix.`,
    );
  }
  const last = history.at(-1);
  if (last && typeof last.valAcc === "number") {
    const gap = last.acc - last.valAcc;
    if (gap > OVERFIT_GAP) {
      out.push(
        `Train/validation gap ${pct(gap)} at epoch ${last.epoch} (train ${pct(last.acc)}, ` +
          `val ${pct(last.valAcc)}): regularise more (dropout, L2, augmentation) or stop earlier.`,
      );
    }
    const best = Math.max(...history.map((h) => h.valAcc ?? -Infinity));
    if (last.valAcc >= best && history.length > 1 && gap <= OVERFIT_GAP) {
      out.push(
        `Validation accuracy was still at its best in the last epoch (${pct(last.valAcc)}): ` +
          `train for more epochs, or with a longer learning-rate schedule.`,
      );
    }
    const valLosses = history.map((h) => h.valLoss).filter((v): v is number =>
      typeof v === "number"
    );
    if (valLosses.length >= 3) {
      const minAt = valLosses.indexOf(Math.min(...valLosses));
      if (minAt < valLosses.length - 2) {
        out.push(
          `Validation loss bottomed out at epoch ${history[minAt].epoch} and rose afterwards: ` +
            `overfitting; keep the best checkpoint (as evaluated here) and add regularisation.`,
        );
      }
    }
    if (last.acc < 0.9) {
      out.push(
        `Training accuracy is only ${pct(last.acc)}: the model underfits; add capacity ` +
          `(wider/more conv layers), train longer or raise the learning rate.`,
      );
    }
  }
  const p = m.probabilities;
  if (p && Number.isFinite(p.meanConfidenceWrong) && p.meanConfidenceWrong > 0.8) {
    out.push(
      `Wrong predictions are made with high confidence (mean ${
        p.meanConfidenceWrong.toFixed(2)
      }): ` +
        `label smoothing or mixup would calibrate the model.`,
    );
  }
  if (out.length === 0) {
    out.push("No clear weak spot: try an ensemble or test-time augmentation for the last points.");
  }
  return out;
}
