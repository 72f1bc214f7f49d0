// Plain-loop CPU reference of the 2x2 / stride-2 `valid` max-pool (forward and gradient), NHWC:
// the body of the op's `cpu` registration and the oracle its WebGPU kernels are tested against.
// It follows tfjs-backend-cpu 4.22's maxPool and maxPoolGrad exactly, odd cases included:
//   - an odd last row / column is dropped (Ho = floor(H / 2)) and gets gradient 0;
//   - the window is scanned in row-major order (top-left, top-right, bottom-left, bottom-right)
//     from -Infinity with a strict `>`: the first maximum of a tie gets the whole gradient;
//   - NaN never wins (`NaN > m` is false); a window of only NaN / -Infinity pools to -Infinity
//     and routes no gradient (tfjs's position -1).

import { cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import { dropoutRef } from "../dropout/dropout_ref.ts";
import { dropoutOf, MAX_POOL2, MAX_POOL2_DROPOUT, MAX_POOL2_GRAD } from "./max_pool2.ts";

/** [N, H, W, C] -> [N, floor(H / 2), floor(W / 2), C]. */
export function maxPool2Shape(xShape: readonly number[]): [number, number, number, number] {
  const [n, h, w, c] = xShape;
  return [n, Math.floor(h / 2), Math.floor(w / 2), c];
}

/**
 * Index in x of the element that wins the window whose top-left element is x[base], or -1 when
 * none does; `row` and `col` are the index strides of one row and one column.
 */
function winner(x: ArrayLike<number>, base: number, row: number, col: number): number {
  let best = -Infinity, at = -1;
  for (const i of [base, base + col, base + row, base + row + col]) {
    if (x[i] > best) {
      best = x[i];
      at = i;
    }
  }
  return at;
}

/** Calls `f` for every window: its top-left element's index in x, its index in the output. */
function forEachWindow(
  xShape: readonly number[],
  f: (base: number, out: number, row: number, col: number) => void,
): void {
  const [n, h, w, c] = xShape;
  const [, ho, wo] = maxPool2Shape(xShape);
  const col = c, row = w * c;
  let out = 0;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < ho; i++) {
      for (let j = 0; j < wo; j++) {
        const pixel = ((b * h + 2 * i) * w + 2 * j) * c;
        for (let ch = 0; ch < c; ch++) f(pixel + ch, out++, row, col);
      }
    }
  }
}

/** y[n, i, j, c] = max of x[n, 2i..2i+1, 2j..2j+1, c]. */
export function maxPool2Ref(x: ArrayLike<number>, xShape: readonly number[]): Float32Array {
  const y = new Float32Array(maxPool2Shape(xShape).reduce((a, b) => a * b, 1));
  forEachWindow(xShape, (base, out, row, col) => {
    const i = winner(x, base, row, col);
    y[out] = i < 0 ? -Infinity : x[i];
  });
  return y;
}

/** dx of sum(maxPool2(x) * dy): each window's dy to its winner, 0 everywhere else. */
export function maxPool2GradRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  xShape: readonly number[],
): Float32Array {
  const dx = new Float32Array(xShape.reduce((a, b) => a * b, 1));
  forEachWindow(xShape, (base, out, row, col) => {
    const i = winner(x, base, row, col);
    if (i >= 0) dx[i] = dy[out];
  });
  return dx;
}

/** The cpu kernels: the references above (then the dropout of the pooled tensor, if any). */
export const maxPool2Cpu = cpuKernel(MAX_POOL2, ({ x }, cpu, attrs) => {
  const y = maxPool2Ref(cpuValues(cpu, x), x.shape);
  const d = dropoutOf(attrs);
  return cpu.makeTensorInfo(maxPool2Shape(x.shape), "float32", d ? dropoutRef(y, d) : y);
});

export const maxPool2DropoutCpu = { ...maxPool2Cpu, kernelName: MAX_POOL2_DROPOUT };

export const maxPool2GradCpu = cpuKernel(MAX_POOL2_GRAD, ({ dy, x }, cpu, attrs) => {
  const d = dropoutOf(attrs);
  const g = d ? dropoutRef(cpuValues(cpu, dy), d) : cpuValues(cpu, dy);
  const dx = maxPool2GradRef(g, cpuValues(cpu, x), x.shape);
  return cpu.makeTensorInfo(x.shape, "float32", dx);
});
