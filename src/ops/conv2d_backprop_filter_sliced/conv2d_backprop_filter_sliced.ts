// Stock tfjs-webgpu's conv2d filter gradient, made right at any batch: the `Conv2DBackpropFilter`
// webgpu kernel is replaced by one that splits the batch into slices, runs the stock kernel on
// each slice and sums the partial filter gradients.
//
// Why: the stock program (Conv2DDerFilterProgram) gives each output element one invocation that
// loops over all N·Ho·Wo output positions (three nested loops, b / yR / yC). llvmpipe stops every
// WGSL loop after 65,535 iterations, counting an inner loop across its outer ones, so past that
// the sum silently ends early. Measured on llvmpipe against the CPU backend (relative L2 error of
// dw, bench/probes/conv2d_filter_grad_repro.ts): 3e-6 at batch 64 on 28x28 (50,176 rows), 0.40 at batch
// 96, 0.63 at batch 128; dx is right everywhere. Chromium's WebGPU (SwiftShader, no loop limit)
// gets the stock kernel right at every batch: an llvmpipe limit, not a tfjs arithmetic bug. Every stock conv gradient in this project goes
// through this kernel: tf.conv2d's gradient and tf.fused.conv2d's (baseline's conv + bias + ReLU)
// both call the conv2DBackpropFilter op.
//
// The slices keep N_slice·Ho·Wo at or below MAX_ROWS_PER_SLICE (half the loop limit, a margin for
// the outer loops' own counts). At batch 128 on 28x28 that is 4 slices: 4 stock dispatches and 3
// adds instead of one dispatch, on any adapter (the cost is small next to the stock kernel's
// N·Ho·Wo serial loop per output element, and the result is then right on adapters with and
// without the limit). A single image with more than MAX_ROWS_PER_SLICE output positions (e.g.
// 200x200) still takes the stock kernel whole: this project's images are 28x28 (784 rows).
// Adapters whose loops run to the end (backend/loop_cap.ts probes it: Mesa 25, SwiftShader, GPUs) take
// the stock kernel whole at every batch.
//
// Imported for its side effect by conv_bn_relu_stock.ts (hence by every model, through
// layers.ts); idempotent.

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
import type { StockOverride } from "../backend/registration.ts";
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import { loopCapped } from "../backend/loop_cap.ts";

/** Output positions (N·Ho·Wo) one stock filter-gradient dispatch may loop over. */
export const MAX_ROWS_PER_SLICE = 32_768;

type Backend = { disposeData(dataId: object): void };

/** Batch slices [begin, size) such that size·rowsPerImage <= maxRows (at least one image each). */
export function batchSlices(
  batch: number,
  rowsPerImage: number,
  maxRows = MAX_ROWS_PER_SLICE,
): [number, number][] {
  const per = Math.max(1, Math.floor(maxRows / Math.max(1, rowsPerImage)));
  const out: [number, number][] = [];
  for (let b = 0; b < batch; b += per) out.push([b, Math.min(per, batch - b)]);
  return out;
}

function kernelFunc(name: string): KernelFunc {
  const k = tf.getKernel(name, "webgpu");
  if (!k) throw new Error(`tfjs-webgpu has no '${name}' kernel to build on`);
  return k.kernelFunc;
}

/** Slices the batch so each stock dispatch stays under the loop cap; sums the slices' dw. */
function slicedFilterGradient(stock: KernelConfig): KernelConfig {
  const stockFunc = stock.kernelFunc;
  const slice = kernelFunc(tf.Slice);
  const add = kernelFunc(tf.Add);

  const sliced: KernelFunc = (args) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const backend = args.backend as unknown as Backend;
    const attrs = args.attrs as NamedAttrMap;
    const channelsLast = (attrs.dataFormat ?? "NHWC") === "NHWC";
    const rowsPerImage = channelsLast ? dy.shape[1] * dy.shape[2] : dy.shape[2] * dy.shape[3];
    const slices = loopCapped() ? batchSlices(x.shape[0], rowsPerImage) : [[0, x.shape[0]]];
    if (slices.length === 1) return stockFunc(args);
    const take = (t: TensorInfo, begin: number, size: number) =>
      slice({
        inputs: { x: t },
        backend: args.backend,
        attrs: { begin: [begin, 0, 0, 0], size: [size, ...t.shape.slice(1)] },
      }) as TensorInfo;
    let sum: TensorInfo | null = null;
    for (const [begin, size] of slices) {
      const xs = take(x, begin, size);
      const dys = take(dy, begin, size);
      const part = stockFunc({
        inputs: { x: xs, dy: dys },
        backend: args.backend,
        attrs,
      }) as TensorInfo;
      backend.disposeData(xs.dataId);
      backend.disposeData(dys.dataId);
      if (sum === null) {
        sum = part;
      } else {
        const next = add({ inputs: { a: sum, b: part }, backend: args.backend }) as TensorInfo;
        backend.disposeData(sum.dataId);
        backend.disposeData(part.dataId);
        sum = next;
      }
    }
    return sum!;
  };

  return { kernelName: tf.Conv2DBackpropFilter, backendName: "webgpu", kernelFunc: sliced };
}

/** The override's entry in the registration table (src/ops/registry.ts). */
export const conv2dBackpropFilterSliced: StockOverride = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: "webgpu",
  why: "the stock filter gradient loops over N*Ho*Wo in one invocation; llvmpipe stops loops " +
    "at 65,535 iterations, so dw was wrong past batch ~64 at 28x28",
  replace: slicedFilterGradient,
};
