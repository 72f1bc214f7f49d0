// The stock conv gradient on webgpu at the batch the models train with: tfjs-webgpu's
// Conv2DBackpropFilter is wrong past ~65k loop iterations on llvmpipe (relL2 0.57 at batch 128,
// 26x26 output; bench/probes/conv2d_filter_grad_repro.ts), and src/ops/conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts
// replaces it with batch slices. Without that module these cases fail with relL2 0.2-0.6.
//
// References: the CPU backend (baseline's conv + bias + ReLU), and the float64 host reference for
// the stock conv + batch-norm + ReLU chain (`--ops stock`). Tolerance: relL2 1e-4 and element
// atol 2e-4·max|e| (float32 sums over 100k terms measure ~1e-6 here; a lost slice is >= 1e-2).

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { batchSlices, MAX_ROWS_PER_SLICE } from "./conv2d_backprop_filter_sliced.ts";
import { convBnReluTrainStock, DEFAULT_EPSILON } from "../conv_bn_relu/conv_bn_relu_stock.ts";
import { convGeometry } from "../conv/geometry.ts";
import { assertClose, type Tolerance } from "../../../test/helpers/compare.ts";
import {
  convBnReluForwardF64,
  convBnReluGradsF64,
  uniformArray,
} from "../../../test/helpers/conv_bn_relu_f64.ts";

const TOL: Tolerance = { atol: 2e-4, rtol: 1e-3, relL2: 1e-4 };

function scaled(ref: ArrayLike<number>): Tolerance {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]));
  return { ...TOL, atol: TOL.atol * m };
}

Deno.test("batchSlices: covers the batch in order, each slice within the row limit", () => {
  for (const [batch, rows] of [[128, 784], [128, 676], [7, 100_000], [1, 1], [300, 49]]) {
    const s = batchSlices(batch, rows);
    assert.equal(s[0][0], 0);
    for (let i = 1; i < s.length; i++) assert.equal(s[i][0], s[i - 1][0] + s[i - 1][1]);
    assert.equal(s.at(-1)![0] + s.at(-1)![1], batch);
    for (const [, n] of s) assert.ok(n === 1 || n * rows <= MAX_ROWS_PER_SLICE, `${batch}x${rows}`);
  }
  assert.equal(batchSlices(128, 784).length, 4);
  assert.equal(batchSlices(64, 196).length, 1);
});

/** x, filter, bias and dy gradients of sum(fused.conv2d(x, w, b, relu) * dy) on `backend`. */
async function baselineConvGrads(backend: "webgpu" | "cpu", data: Float32Array[], n: number) {
  await initTf(backend);
  const x = tf.tensor4d(data[0], [n, 28, 28, 1]);
  const w = tf.tensor4d(data[1], [3, 3, 1, 32]);
  const b = tf.tensor1d(data[2]);
  const dy = tf.tensor4d(data[3], [n, 26, 26, 32]);
  const grads = tf.grads((...[a, f, bias]: tf.Tensor[]) =>
    tf.fused.conv2d({
      x: a as tf.Tensor4D,
      filter: f as tf.Tensor4D,
      bias,
      strides: 1,
      pad: "valid",
      activation: "relu",
    })
  )([x, w, b], dy);
  const out = await Promise.all(grads.map((g) => g.data()));
  tf.dispose([x, w, b, dy, ...grads]);
  return out;
}

Deno.test("stock conv gradient: baseline's first layer (fused.conv2d valid + bias + ReLU) at batch 128 matches the CPU backend", async () => {
  const n = 128; // 26x26 output: 86,528 rows, past the stock kernel's loop limit
  const data = [
    uniformArray(n * 28 * 28, 1, 0, 1),
    uniformArray(9 * 32, 2, -0.5, 0.5),
    uniformArray(32, 3, -0.1, 0.1),
    uniformArray(n * 26 * 26 * 32, 4, -1, 1),
  ];
  const gpu = await baselineConvGrads("webgpu", data, n);
  const cpu = await baselineConvGrads("cpu", data, n);
  await initTf("webgpu");
  ["dx", "dfilter", "dbias"].forEach((name, i) =>
    assertClose(gpu[i], cpu[i], scaled(cpu[i]), `baseline conv1 ${name}`)
  );
});

Deno.test("stock conv gradient: --ops stock conv+BN+ReLU 1->32 at batch 128 (28x28 same) matches float64", async () => {
  await initTf("webgpu");
  const n = 128; // 100,352 rows
  const g = convGeometry([n, 28, 28, 1], [3, 3, 1, 32], 1, "same");
  const xs = uniformArray(n * 784, 5, 0, 1);
  const ws = uniformArray(9 * 32, 6, -0.6, 0.6);
  const gs = uniformArray(32, 7, 0.5, 1.5);
  const bs = uniformArray(32, 8, -0.5, 0.5);
  const dys = uniformArray(n * 784 * 32, 9, -1, 1);
  const t = [
    tf.tensor4d(xs, [n, 28, 28, 1]),
    tf.tensor4d(ws, [3, 3, 1, 32]),
    tf.tensor1d(gs),
    tf.tensor1d(bs),
  ] as const;
  const dy = tf.tensor4d(dys, [n, 28, 28, 32]);
  const grads = tf.grads((...[x, w, gamma, beta]: tf.Tensor[]) =>
    convBnReluTrainStock(
      x as tf.Tensor4D,
      w as tf.Tensor4D,
      gamma as tf.Tensor1D,
      beta as tf.Tensor1D,
      { strides: 1, pad: "same" },
    ).y
  )([...t], dy);
  const got = await Promise.all(grads.map((x) => x.data()));
  tf.dispose([...t, dy, ...grads]);
  const fwd = convBnReluForwardF64(xs, ws, gs, bs, g, DEFAULT_EPSILON);
  const ref = convBnReluGradsF64(xs, ws, gs, bs, dys, fwd, g, DEFAULT_EPSILON);
  const want = [ref.dx, ref.dfilter, ref.dgamma, ref.dbeta];
  ["dx", "dfilter", "dgamma", "dbeta"].forEach((name, i) =>
    assertClose(got[i], want[i], scaled(want[i]), `stock conv+BN+ReLU ${name}`)
  );
});
