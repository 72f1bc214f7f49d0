// CPU reference of the smoothed softmax cross-entropy, its correct count and its gradient
// (float64 accumulation), and the cpu kernels built on it.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import { type CpuBackend, cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { smoothingOf, SOFTMAX_XENT, SOFTMAX_XENT_GRAD } from "./softmax_xent.ts";

function rowStats(l: Float32Array, base: number, classes: number) {
  let mx = l[base];
  for (let c = 1; c < classes; c++) mx = Math.max(mx, l[base + c]);
  let sumExp = 0;
  for (let c = 0; c < classes; c++) sumExp += Math.exp(l[base + c] - mx);
  return { mx, sumExp, lse: mx + Math.log(sumExp) };
}

function argMax(a: Float32Array, base: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (a[base + c] > a[base + best]) best = c;
  return best;
}

export function softmaxXentRef(
  logits: Float32Array,
  labels: Float32Array,
  rows: number,
  classes: number,
  s: number,
): { loss: number; correct: number } {
  let sum = 0, correct = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const { lse } = rowStats(logits, base, classes);
    for (let c = 0; c < classes; c++) {
      sum += (labels[base + c] * (1 - s) + s / classes) * (logits[base + c] - lse);
    }
    if (argMax(logits, base, classes) === argMax(labels, base, classes)) correct++;
  }
  return { loss: -sum / rows, correct };
}

export function softmaxXentGradRef(
  logits: Float32Array,
  labels: Float32Array,
  rows: number,
  classes: number,
  s: number,
  dy: number,
): Float32Array {
  const out = new Float32Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const { mx, sumExp } = rowStats(logits, base, classes);
    let total = 0;
    for (let c = 0; c < classes; c++) total += labels[base + c] * (1 - s) + s / classes;
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[base + c] - mx) / sumExp;
      const t = labels[base + c] * (1 - s) + s / classes;
      out[base + c] = (p * total - t) * dy / rows;
    }
  }
  return out;
}

/** The CPU kernels' shared arguments: logits and labels on the host, [rows, classes], smoothing. */
function refInputs(inputs: Record<string, TensorInfo>, cpu: CpuBackend, attrs: unknown) {
  const [rows, classes] = inputs.logits.shape;
  const logits = cpuValues(cpu, inputs.logits);
  return [logits, cpuValues(cpu, inputs.labels), rows, classes, smoothingOf(attrs)] as const;
}

export const softmaxXentCpu = cpuKernel(SOFTMAX_XENT, (inputs, cpu, attrs) => {
  const r = softmaxXentRef(...refInputs(inputs, cpu, attrs));
  return [r.loss, r.correct].map((v) => cpu.makeTensorInfo([], "float32", Float32Array.of(v)));
});

export const softmaxXentGradCpu = cpuKernel(SOFTMAX_XENT_GRAD, (inputs, cpu, attrs) => {
  const out = softmaxXentGradRef(...refInputs(inputs, cpu, attrs), cpuValues(cpu, inputs.dy)[0]);
  return cpu.makeTensorInfo(inputs.logits.shape, "float32", out);
});
