// The project's one median and quantile (benchmarks, probes, the autotuner's timings).

/** Median of `xs` (the mean of the two middle values for an even count); `xs` is not modified. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median of no values");
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

/** Linear-interpolated quantile `q` in [0, 1] of an ascending array. */
export function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
