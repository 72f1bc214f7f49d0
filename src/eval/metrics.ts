// Classification metrics as pure functions of (true labels, predicted labels[, probabilities]).
//
// Conventions (documented because they decide numbers in reports):
// - Labels are integers in [0, numClasses). The confusion matrix is indexed [true][predicted].
// - A class that is never predicted has precision 0; a class with no support has recall 0; F1 is 0
//   when precision + recall is 0 (scikit-learn's `zero_division=0`).
// - Macro averages are taken over the "present" classes: those with support or predictions. A class
//   absent from both (possible with --limit) says nothing about the model and is left out, so that
//   perfect predictions always give 1.0. Weighted averages weight by support.

export interface ClassMetrics {
  label: number;
  name: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of samples whose true label is this class. */
  support: number;
  /** Number of samples predicted as this class. */
  predicted: number;
}

export interface Averages {
  precision: number;
  recall: number;
  f1: number;
}

export interface Confusion {
  trueLabel: number;
  predictedLabel: number;
  trueName: string;
  predictedName: string;
  count: number;
  /** count / support of the true class. */
  fractionOfTrue: number;
}

export interface ProbabilityMetrics {
  /** Mean cross-entropy -log p(true class), probabilities clamped at 1e-7. */
  logLoss: number;
  /** Fraction of samples whose true class is among the 3 most probable. */
  top3Accuracy: number;
  /** Mean probability of the predicted class over correct / incorrect predictions (NaN if none). */
  meanConfidenceCorrect: number;
  meanConfidenceWrong: number;
}

export interface ClassificationMetrics {
  n: number;
  numClasses: number;
  accuracy: number;
  /** confusion[t][p] = number of samples with true label t predicted as p. */
  confusion: number[][];
  perClass: ClassMetrics[];
  macro: Averages;
  weighted: Averages;
  /** Off-diagonal cells with count > 0, largest first (ties: lower true label, then predicted). */
  topConfusions: Confusion[];
  probabilities?: ProbabilityMetrics;
}

function checkLabels(labels: ArrayLike<number>, numClasses: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
      throw new RangeError(`${what}[${i}] = ${v} is not a class label in [0, ${numClasses})`);
    }
  }
}

/** Fraction of equal labels; 0 for empty input. */
export function accuracy(trueLabels: ArrayLike<number>, predicted: ArrayLike<number>): number {
  if (trueLabels.length !== predicted.length) {
    throw new RangeError(`label count mismatch: ${trueLabels.length} vs ${predicted.length}`);
  }
  let hits = 0;
  for (let i = 0; i < trueLabels.length; i++) if (trueLabels[i] === predicted[i]) hits++;
  return trueLabels.length === 0 ? 0 : hits / trueLabels.length;
}

export function confusionMatrix(
  trueLabels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  numClasses: number,
): number[][] {
  if (trueLabels.length !== predicted.length) {
    throw new RangeError(`label count mismatch: ${trueLabels.length} vs ${predicted.length}`);
  }
  checkLabels(trueLabels, numClasses, "trueLabels");
  checkLabels(predicted, numClasses, "predicted");
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < trueLabels.length; i++) m[trueLabels[i]][predicted[i]]++;
  return m;
}

function ratio(num: number, den: number): number {
  return den === 0 ? 0 : num / den;
}

/** Per-class precision/recall/F1/support from a confusion matrix (zero-division gives 0). */
export function perClassMetrics(confusion: number[][], names: readonly string[]): ClassMetrics[] {
  const k = confusion.length;
  return confusion.map((row, c) => {
    const tp = row[c];
    const support = row.reduce((a, b) => a + b, 0);
    let predicted = 0;
    for (let t = 0; t < k; t++) predicted += confusion[t][c];
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    const f1 = ratio(2 * precision * recall, precision + recall);
    return { label: c, name: names[c] ?? String(c), precision, recall, f1, support, predicted };
  });
}

/** Macro (over present classes) and support-weighted averages. */
export function averages(perClass: ClassMetrics[]): { macro: Averages; weighted: Averages } {
  const present = perClass.filter((c) => c.support > 0 || c.predicted > 0);
  const total = perClass.reduce((a, c) => a + c.support, 0);
  const mean = (key: keyof Averages) =>
    ratio(present.reduce((a, c) => a + c[key], 0), present.length);
  const wmean = (key: keyof Averages) =>
    ratio(perClass.reduce((a, c) => a + c[key] * c.support, 0), total);
  return {
    macro: { precision: mean("precision"), recall: mean("recall"), f1: mean("f1") },
    weighted: { precision: wmean("precision"), recall: wmean("recall"), f1: wmean("f1") },
  };
}

/** Off-diagonal cells with count > 0, ranked by count (ties broken by label order). */
export function topConfusions(
  confusion: number[][],
  names: readonly string[],
  limit = Infinity,
): Confusion[] {
  const out: Confusion[] = [];
  confusion.forEach((row, t) => {
    const support = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => {
      if (p === t || count === 0) return;
      out.push({
        trueLabel: t,
        predictedLabel: p,
        trueName: names[t] ?? String(t),
        predictedName: names[p] ?? String(p),
        count,
        fractionOfTrue: ratio(count, support),
      });
    });
  });
  out.sort((a, b) =>
    b.count - a.count || a.trueLabel - b.trueLabel || a.predictedLabel - b.predictedLabel
  );
  return out.slice(0, limit);
}

/** Index of the largest value in each row of a row-major [n, k] array. */
export function argmaxRows(probs: ArrayLike<number>, k: number): Int32Array {
  const n = Math.floor(probs.length / k);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}

/** The `count` most probable classes of one row, most probable first. */
export function topK(row: ArrayLike<number>, count: number): { label: number; p: number }[] {
  return Array.from(row, (p, label) => ({ label, p }))
    .sort((a, b) => b.p - a.p || a.label - b.label)
    .slice(0, count);
}

/** Metrics that need the probabilities ([n, k] row-major, rows summing to ~1). */
export function probabilityMetrics(
  trueLabels: ArrayLike<number>,
  probs: ArrayLike<number>,
  k: number,
): ProbabilityMetrics {
  const n = trueLabels.length;
  if (probs.length !== n * k) {
    throw new RangeError(`probabilities have ${probs.length} values, expected ${n}x${k}`);
  }
  let logLoss = 0, top3 = 0, confOk = 0, nOk = 0, confWrong = 0, nWrong = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.prototype.slice.call(probs, i * k, (i + 1) * k) as number[];
    const t = trueLabels[i];
    logLoss -= Math.log(Math.max(row[t], 1e-7));
    const ranked = topK(row, 3);
    if (ranked.some((r) => r.label === t)) top3++;
    if (ranked[0].label === t) {
      confOk += ranked[0].p;
      nOk++;
    } else {
      confWrong += ranked[0].p;
      nWrong++;
    }
  }
  return {
    logLoss: n === 0 ? 0 : logLoss / n,
    top3Accuracy: ratio(top3, n),
    meanConfidenceCorrect: nOk === 0 ? NaN : confOk / nOk,
    meanConfidenceWrong: nWrong === 0 ? NaN : confWrong / nWrong,
  };
}

/**
 * All metrics at once. `probs` (optional, [n, numClasses] row-major) adds log loss, top-3 accuracy
 * and mean confidences.
 */
export function classificationMetrics(
  trueLabels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  names: readonly string[],
  probs?: ArrayLike<number>,
): ClassificationMetrics {
  const numClasses = names.length;
  const confusion = confusionMatrix(trueLabels, predicted, numClasses);
  const perClass = perClassMetrics(confusion, names);
  const { macro, weighted } = averages(perClass);
  return {
    n: trueLabels.length,
    numClasses,
    accuracy: accuracy(trueLabels, predicted),
    confusion,
    perClass,
    macro,
    weighted,
    topConfusions: topConfusions(confusion, names),
    ...(probs ? { probabilities: probabilityMetrics(trueLabels, probs, numClasses) } : {}),
  };
}
