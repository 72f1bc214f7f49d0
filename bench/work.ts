// Napkin math for a conv + batch-norm + ReLU block: FLOPs and the minimum bytes a fused
// implementation must move, so measured times turn into GFLOP/s, GB/s and % of roofline.

import type { ConvShape } from "../src/model/layers.ts";
import { convGeometry } from "../src/ops/conv/geometry.ts";

/** One conv layer of a model, NHWC input, square kernel, given without the batch. */
export type LayerShape = ConvShape;

export type KernelMode = "train-fwd" | "train-fwd-bwd" | "infer";

export interface WorkEstimate {
  flops: number;
  bytes: number;
}

/** "28x28x1->32 k3 s1 same". */
export function layerLabel(l: LayerShape): string {
  return `${l.h}x${l.w}x${l.cin}->${l.cout} k${l.k} s${l.stride} ${l.pad}`;
}

/**
 * FLOPs: forward = 2*N*Ho*Wo*Cout*KH*KW*Cin (the conv; BN and ReLU are O(output) and left out).
 * Backward = one forward's worth for dW, another for dX unless the layer reads the model input
 * (nobody needs dX there: `needsDx` false). Bytes (f32): inputs + weights + outputs + per-channel
 * statistics/parameters, each counted once: the traffic of an ideal fused kernel.
 */
export function convBnReluWork(
  l: LayerShape,
  batch: number,
  mode: KernelMode,
  needsDx = true,
): WorkEstimate {
  const g = convGeometry([batch, l.h, l.w, l.cin], [l.k, l.k, l.cin, l.cout], l.stride, l.pad);
  const fwdFlops = 2 * batch * g.outH * g.outW * l.cout * l.k * l.k * l.cin;
  const x = batch * l.h * l.w * l.cin;
  const w = l.k * l.k * l.cin * l.cout;
  const y = batch * g.outH * g.outW * l.cout;
  const c = l.cout;
  switch (mode) {
    case "infer":
      // x, w, gamma, beta, moving mean/variance in; y out.
      return { flops: fwdFlops, bytes: 4 * (x + w + 4 * c + y) };
    case "train-fwd":
      // x, w, gamma, beta in; y, batch mean and variance out.
      return { flops: fwdFlops, bytes: 4 * (x + w + 2 * c + y + 2 * c) };
    case "train-fwd-bwd": {
      const fwdBytes = x + w + 2 * c + y + 2 * c;
      // dy, y (or z), x, w, gamma, mean, variance in; dw, dgamma, dbeta (and dx) out.
      const bwdBytes = 2 * y + x + w + 3 * c + w + 2 * c + (needsDx ? x : 0);
      return { flops: fwdFlops * (needsDx ? 3 : 2), bytes: 4 * (fwdBytes + bwdBytes) };
    }
  }
}
