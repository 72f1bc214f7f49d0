// Element-wise comparison with the pass rule |actual - expected| <= atol + rtol * |expected|
// (llm.c, Burn), plus relative L2 error. A failure message names the case and shows the first
// mismatches, so a property-test counterexample can be read without rerunning it.

export interface Tolerance {
  atol: number;
  rtol: number;
  /** Optional bound on ||a - e||_2 / max(||e||_2, tiny). */
  relL2?: number;
}

export interface CompareResult {
  ok: boolean;
  maxAbsDiff: number;
  relL2: number;
  mismatches: number;
  message: string;
}

export function compareArrays(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = "",
): CompareResult {
  if (actual.length !== expected.length) {
    return {
      ok: false,
      maxAbsDiff: Infinity,
      relL2: Infinity,
      mismatches: Math.max(actual.length, expected.length),
      message: `${label}: length ${actual.length} != expected ${expected.length}`,
    };
  }
  let maxAbsDiff = 0, diff2 = 0, ref2 = 0, mismatches = 0;
  const first: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    const d = Math.abs(a - e);
    // NaN (an unwritten, poisoned element) fails both comparisons below.
    if (!(d <= tol.atol + tol.rtol * Math.abs(e))) {
      mismatches++;
      if (first.length < 5) first.push(`[${i}] got ${a} want ${e}`);
    }
    if (!(d <= maxAbsDiff)) maxAbsDiff = d;
    diff2 += (a - e) * (a - e);
    ref2 += e * e;
  }
  const relL2 = Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), 1e-30);
  const l2ok = tol.relL2 === undefined || relL2 <= tol.relL2;
  const ok = mismatches === 0 && l2ok && !Number.isNaN(relL2);
  const message = ok ? "" : `${label}: ${mismatches}/${expected.length} elements off ` +
    `(atol ${tol.atol}, rtol ${tol.rtol}); max |diff| ${maxAbsDiff.toExponential(3)}, ` +
    `rel L2 ${relL2.toExponential(3)}${tol.relL2 !== undefined ? ` (limit ${tol.relL2})` : ""}; ` +
    first.join(", ");
  return { ok, maxAbsDiff, relL2, mismatches, message };
}

/** ||actual - expected||_2 / max(||expected||_2, floor). */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1e-30) {
  let diff2 = 0, ref2 = 0;
  for (let i = 0; i < expected.length; i++) {
    diff2 += (actual[i] - expected[i]) ** 2;
    ref2 += expected[i] ** 2;
  }
  return Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), floor);
}

/** Throws with the comparison message when the arrays differ beyond `tol`. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = "",
): void {
  const r = compareArrays(actual, expected, tol, label);
  if (!r.ok) throw new Error(r.message);
}

/**
 * Exact equality, element by element (NaN equals nothing): for two paths that run the same
 * arithmetic in the same order, e.g. a kernel reading storage and the same kernel reading a
 * texture. Throws naming `what` and the first differing element.
 */
export function assertBitIdentical(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
): void {
  if (got.length !== expected.length) {
    throw new Error(`${what}: ${got.length} elements, expected ${expected.length}`);
  }
  for (let i = 0; i < got.length; i++) {
    if (!(got[i] === expected[i])) {
      throw new Error(`${what}: element ${i} ${got[i]} != ${expected[i]}`);
    }
  }
}
