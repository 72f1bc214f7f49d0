// 2x2 / stride-2 `valid` max-pool as our own op, NHWC float32, any N, H, W, C (odd H / W: the
// last row / column is dropped, as tf.maxPool(x, 2, 2, "valid") does):
//   MaxPool2      inputs {x}; output y (N, floor(H / 2), floor(W / 2), C)
//   MaxPool2Grad  inputs {dy, x}; output dx (N, H, W, C): each window's dy to its first maximum
//                 in row-major order (tfjs-backend-cpu's tie rule), 0 elsewhere
// One dispatch each (src/ops/max_pool2/max_pool2.wgsl, src/ops/max_pool2/max_pool2_grad.wgsl; vec4 when C % 4 == 0),
// no loops. The gradient recomputes the argmax from the saved input, so a pool costs 2 dispatches
// per training step where tf.maxPool on webgpu costs 3 (forward, a second Pool2D pass that writes
// the argmax positions, MaxPool2DBackprop). The cpu kernels are the plain-loop reference
// (max_pool2_ref.ts), which follows tfjs's CPU maxPool / maxPoolGrad exactly.
// Optional attrs {rate, seed} (maxPool2Dropout) apply dropout to the pooled tensor in the same
// passes: the forward multiplies by the mask of src/ops/wgsl/dropout_mask.wgsl over the pooled element
// index, the gradient multiplies dy by it before routing, so dropout(maxPool2(x)) bit for bit at
// no dispatch of its own. The enhanced model's last pool, flatten and dropout run this way:
// 2 dispatches per step fewer (bench/dispatches.ts); the pass does 2 integer hashes more per
// pooled element, and the dropout pass it removes read and wrote the [N, 3136] tensor once each
// way.
//
// Measured on llvmpipe (LLVM 15, 2 busy cores, load ~6; same-run A/B, batch 128):
//   pool forward + backward alone (bench/probes/max_pool2_probe.ts, median of 15, alternating):
//     [128,28,28,32] tfjs 306 ms wall / 294 ms GPU, ours 30.6 / 17.5  (10.0x wall, 16.8x GPU)
//     [128,14,14,64] tfjs 156 / 142,               ours 18.1 / 5.4   (8.6x, 26x)
//     [128,26,26,32] tfjs 265 / 251,               ours 26.5 / 14.6  (10.0x, 17x)
//     [128,11,11,64] tfjs 93 / 82,                 ours 20.3 / 8.0   (4.6x, 10x)
//   (tfjs's MaxPool2DBackprop loops over the window per dx element and reads the positions
//   tensor; wall includes ~12 ms of read-back per call.)
//   whole training step (bench/step_ab.ts, tfjs's pool vs this, alternating, median of 5
//   steps, process CPU time): enhanced 0.83x, baseline 0.62x (BENCHMARKS.md history; the full
//   table: `git show be6abbb:BENCHMARKS.md`, "Max-pool").
//   profile (enhanced, batch 128): MaxPool2Grad 1.8% + MaxPool2 0.6% of the GPU time, where
//   MaxPool2DBackprop + Pool2D were 20.6%.
// In `baseline` the pool after conv + bias + ReLU runs inside ConvBiasReluPool2
// (conv_bias_relu_pool2.ts: its backward routes the pooled gradient, masks and sums it for the
// bias in one pass). Not fused into the conv + BN + ReLU block: bench/probes/max_pool2_fusion_probe.ts measures a prototype BN apply
// pass that writes the pooled output at 3.3-13.5 ms less than apply + this forward (28x28x32)
// and 2.5-3.0 ms (14x14x64), and this gradient (what a backward fusion could at most remove) at
// 11-16 and 2.6-4.8 ms: at most 20-37 ms of a ~1.9 s step (1-2%) and 4 dispatches on llvmpipe.

import * as tf from "@tensorflow/tfjs-core";
import type { GradConfig } from "@tensorflow/tfjs-core";
import { UsageError } from "../../errors.ts";
import { checkDropoutAttrs, type DropoutAttrs, dropoutKeyTensor } from "../dropout/dropout.ts";

export const MAX_POOL2 = "MaxPool2";
export const MAX_POOL2_GRAD = "MaxPool2Grad";
/**
 * MAX_POOL2 with dropout (attrs {rate, seed}) and the mask's key as a second input {x,
 * dropoutKey}: its own kernel name so that its gradient can save the key (tfjs saves inputs by
 * name, and plain MAX_POOL2 has none). The same kernels run both.
 */
export const MAX_POOL2_DROPOUT = "MaxPool2Dropout";

/** The kernels' optional dropout of the pooled tensor: {rate, seed}, rate 0 (none) by default. */
export function dropoutOf(attrs: unknown): DropoutAttrs | undefined {
  const a = (attrs ?? {}) as Partial<DropoutAttrs>;
  if (a.rate === undefined || a.rate === 0) return undefined;
  const d = { rate: Number(a.rate), seed: Number(a.seed ?? 0) };
  checkDropoutAttrs(d);
  return d;
}

/** tf.maxPool(x, 2, 2, "valid") on our kernels; differentiable w.r.t. x. */
export function maxPool2(x: tf.Tensor4D): tf.Tensor4D {
  checkPoolInput(x);
  return tf.engine().runKernel(MAX_POOL2, { x }) as tf.Tensor4D;
}

function checkPoolInput(x: tf.Tensor4D) {
  if (x.rank !== 4) throw new UsageError(`maxPool2: x must be NHWC (rank 4), got [${x.shape}]`);
  if (x.dtype !== "float32") throw new UsageError(`maxPool2: x must be float32, got ${x.dtype}`);
  if (x.shape.some((d) => d < 1) || x.shape[1] < 2 || x.shape[2] < 2) {
    throw new UsageError(`maxPool2: x must be non-empty and at least 2x2, got [${x.shape}]`);
  }
}

/**
 * dropout(maxPool2(x), rate, seed) in the pool's own dispatches (the same mask as the dropout
 * op, bit for bit: src/ops/wgsl/dropout_mask.wgsl over the pooled tensor's element index); the
 * gradient applies the mask to dy in the pool gradient's pass. Differentiable w.r.t. x.
 */
export function maxPool2Dropout(
  x: tf.Tensor4D,
  rate: number,
  seed: number,
  key?: tf.Tensor1D,
): tf.Tensor4D {
  checkPoolInput(x);
  checkDropoutAttrs({ rate, seed });
  if (rate === 0) return maxPool2(x);
  // The mask's key as an input (src/ops/dropout/dropout.ts: dropoutKeyTensor).
  const dropoutKey = key ?? dropoutKeyTensor(seed);
  try {
    return tf.engine().runKernel(MAX_POOL2_DROPOUT, { x, dropoutKey }, {
      rate,
      seed,
    }) as tf.Tensor4D;
  } finally {
    if (dropoutKey !== key) dropoutKey.dispose();
  }
}

export const maxPool2Gradient: GradConfig = {
  kernelName: MAX_POOL2,
  inputsToSave: ["x"],
  gradFunc: (dy, saved, attrs) => {
    const [x, dropoutKey] = saved;
    return {
      x: () =>
        tf.engine().runKernel(MAX_POOL2_GRAD, {
          dy: Array.isArray(dy) ? dy[0] : dy,
          x,
          ...(dropoutKey ? { dropoutKey } : {}),
        }, attrs) as tf.Tensor,
    };
  },
};

export const maxPool2DropoutGradient: GradConfig = {
  ...maxPool2Gradient,
  kernelName: MAX_POOL2_DROPOUT,
  inputsToSave: ["x", "dropoutKey"],
};
