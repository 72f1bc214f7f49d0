// Standalone reproduction: tfjs-webgpu's conv2d filter gradient vs the CPU backend, per batch.
//
//   deno run -A bench/probes/conv2d_filter_grad_repro.ts            # stock tfjs 4.22 kernels
// (XDG_RUNTIME_DIR must be set for Deno's WebGPU on Linux.)
//   deno run -A bench/probes/conv2d_filter_grad_repro.ts --sliced   # with src/ops/conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts
//
// In a browser: bundle a page that calls runRepro (deno bundle --platform browser) and read its
// lines; headless Chromium 156 on SwiftShader gives ~4e-6 at every batch (no loop limit there).
//
// Uses only @tensorflow/tfjs-core, -backend-cpu and -backend-webgpu, and src/random.ts (which
// imports nothing). For each case and batch it runs the two gradient kernels of conv2d (Conv2DBackpropFilter: d/dw, and conv2dTranspose: d/dx,
// of sum(conv2d(x, w) * dy)) on webgpu and on the CPU backend from the same data and
// prints the relative L2 error ||gpu - cpu|| / ||cpu||, and N·Ho·Wo (the length of the loop one
// invocation of the stock filter-gradient program runs). Float32 rounding alone gives ~1e-6.

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-webgpu";
import { Rng } from "../../src/random.ts";

interface Case {
  name: string;
  hw: number;
  cin: number;
  cout: number;
  pad: "same" | "valid";
  batches: number[];
}
// 26x26 valid output: 676 rows per image; 28x28 same: 784 per image. The stock program's loop
// nest also counts its outer iterations (N and N·Ho), so the failure starts a little below
// 65,536 rows (batch 96 valid = 64,896 rows; batch 83 same = 65,072). 1 input channel keeps the
// CPU backend fast; the error does not depend on the channel counts.
const CASES: Case[] = [
  { name: "1->32 valid 28x28", hw: 28, cin: 1, cout: 32, pad: "valid", batches: [64, 95, 96, 128] },
  { name: "1->32 same 28x28", hw: 28, cin: 1, cout: 32, pad: "same", batches: [82, 83, 128] },
  { name: "1->8 same 28x28", hw: 28, cin: 1, cout: 8, pad: "same", batches: [256] },
];

/** `n` seeded uniform values in [-1, 1). */
function randomArray(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

async function grads(backend: string, c: Case, n: number, data: Float32Array[]) {
  await tf.setBackend(backend);
  await tf.ready();
  const x = tf.tensor4d(data[0], [n, c.hw, c.hw, c.cin]);
  const w = tf.tensor4d(data[1], [3, 3, c.cin, c.cout]);
  const y = tf.conv2d(x, w, 1, c.pad);
  const dy = tf.tensor(data[2].subarray(0, y.size), y.shape) as tf.Tensor4D;
  // The kernels tf.grads would run for conv2d (tfjs-core's conv2d gradient calls exactly these).
  const dx = tf.conv2dTranspose(dy, w, x.shape, 1, c.pad);
  const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
    strides: [1, 1],
    pad: c.pad,
    dataFormat: "NHWC",
    dimRoundingMode: undefined,
    filterShape: w.shape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = {
    dx: await dx.data(),
    dw: await dw.data(),
    rows: y.shape[0] * y.shape[1]! * y.shape[2]!,
  };
  tf.dispose([x, w, y, dy, dx, dw]);
  return out;
}

function relL2(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let d = 0, r = 0;
  for (let i = 0; i < e.length; i++) {
    d += (a[i] - e[i]) ** 2;
    r += e[i] ** 2;
  }
  return Math.sqrt(d) / Math.sqrt(r);
}

// The CPU backend prints an "install tfjs-node" banner on first use under Deno; it is the reference
// here on purpose.
/** Runs every case; `log` gets the header and one line per case. Also runs in a browser page. */
export async function runRepro(log: (line: string) => void, sliced = false): Promise<void> {
  (tf.findBackend("cpu") as unknown as { firstUse?: boolean }).firstUse = false;
  await tf.setBackend("webgpu");
  await tf.ready();
  const info = (await navigator.gpu.requestAdapter())?.info;
  log(
    `tfjs-core ${tf.version_core}, webgpu adapter: ${info?.description || info?.vendor || "?"}` +
      (sliced ? " (filter gradient sliced by batch)" : " (stock kernels)"),
  );
  log("case                  batch  N*Ho*Wo  relL2(dw)  relL2(dx)");
  for (const c of CASES) {
    for (const n of c.batches) {
      const data = [
        randomArray(n * c.hw * c.hw * c.cin, 1),
        randomArray(9 * c.cin * c.cout, 2),
        randomArray(n * c.hw * c.hw * c.cout, 3),
      ];
      const gpu = await grads("webgpu", c, n, data);
      const cpu = await grads("cpu", c, n, data);
      log(
        `${c.name.padEnd(20)}  ${String(n).padStart(5)}  ${String(gpu.rows).padStart(7)}  ` +
          `${relL2(gpu.dw, cpu.dw).toExponential(2).padStart(9)}  ` +
          `${relL2(gpu.dx, cpu.dx).toExponential(2).padStart(9)}`,
      );
    }
  }
}

if (import.meta.main) {
  const sliced = Deno.args.includes("--sliced");
  if (sliced) {
    const { installStockOverride } = await import("../../src/ops/registry.ts");
    const { conv2dBackpropFilterSliced } = await import(
      "../../src/ops/conv2d_backprop_filter_sliced/conv2d_backprop_filter_sliced.ts"
    );
    installStockOverride(conv2dBackpropFilterSliced);
  }
  await runRepro(console.log, sliced);
}
