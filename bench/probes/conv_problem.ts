// One stride-1 conv layer as the tile-config probes time it (conv_gemm_probe.ts,
// winograd_probe.ts): seeded random operands and, per GEMM view, a run of the dispatch
// (src/ops/conv/gemm.ts) under a given tile config.

import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type ConvGeometry, convGeometry } from "../../src/ops/conv/geometry.ts";
import { convBackpropData, convBackpropFilter, convForward } from "../../src/ops/conv/gemm.ts";
import type { ConvView, TileConfig } from "../../src/ops/conv/tiling.ts";

export interface ConvProblem {
  g: ConvGeometry;
  /** Multiply-adds x 2 of one view (the same for all three), in GFLOP. */
  gflop: number;
  /** One view's output under config `c`, as a tensor the caller disposes. */
  run: Record<ConvView, (c: TileConfig) => tf.Tensor>;
  /** Frees the operands. */
  dispose(): void;
}

/** x (N, H, W, Cin) ~ N(0, 1), a k x k filter ~ N(0, 0.1), dz ~ N(0, 1); stride 1. */
export function convProblem(
  backend: WebGPUBackend,
  batch: number,
  s: { h: number; w: number; cin: number; cout: number; k: number },
  pad: "same" | "valid",
): ConvProblem {
  const g = convGeometry([batch, s.h, s.w, s.cin], [s.k, s.k, s.cin, s.cout], 1, pad);
  const x = tf.randomNormal([batch, s.h, s.w, s.cin], 0, 1, "float32", 1);
  const w = tf.randomNormal([s.k, s.k, s.cin, s.cout], 0, 0.1, "float32", 2);
  const dz = tf.randomNormal([batch, g.outH, g.outW, s.cout], 0, 1, "float32", 3);
  const tensor = (info: tf.TensorInfo) => tf.engine().makeTensorFromTensorInfo(info);
  return {
    g,
    gflop: (2 * batch * g.outH * g.outW * s.cout * s.k * s.k * s.cin) / 1e9,
    run: {
      fwd: (c) => tensor(convForward(backend, x, w, g, "store", [], c)),
      bwdData: (c) => tensor(convBackpropData(backend, dz, w, g, c)),
      bwdFilter: (c) => tensor(convBackpropFilter(backend, dz, x, g, c)),
    },
    dispose: () => tf.dispose([x, w, dz]),
  };
}
