// The filter read through a uniform buffer (TileConfig.filterInUniform, `.ubo` configs;
// src/tf/uniform_inputs.ts): the module rewrite, and that a `.ubo` config gives exactly the
// outputs of the same tile reading storage (the same arithmetic in the same order: bit-identical
// is the expectation), through uniform buffers where the filter fits one binding, or in a row
// window each filter row does (the kh loop unrolled), and it is read as vec4; from storage
// elsewhere. The reference comparisons over random shapes are the property tests
// of the ops, which run every config (allConfigs) including these.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { convGeometry } from "./geometry.ts";
import { convBackpropData, convForward } from "./gemm.ts";
import { type TileConfig } from "./tiling.ts";
import {
  installUniformInputs,
  rewriteUniformInputs,
  UNIFORM_INPUT_BYTES,
  uniformInputMarker,
} from "../../tf/uniform_inputs.ts";
import { gpuTest, seededUniform, tileConfig as config } from "../../../test/helpers/op_check.ts";
import { assertBitIdentical } from "../../../test/helpers/compare.ts";

Deno.test("rewriteUniformInputs: the marked vec4 binding becomes 64 KiB uniform arrays", () => {
  const code = [
    "@group(0) @binding(0) var<storage, read_write> result: array<vec4<f32>>;",
    "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;",
    "@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;",
    "@group(0) @binding(3) var<uniform> uniforms: Uniforms;",
  ].join("\n");
  const array = `array<vec4<f32>, ${UNIFORM_INPUT_BYTES / 16}>`;
  const one = rewriteUniformInputs(`${code}\n${uniformInputMarker("w")}`);
  assert.deepEqual(one.inputs, [{ binding: 2, extra: [] }]);
  assert.ok(one.code.includes(`@group(0) @binding(2) var<uniform> w: ${array};`));
  assert.ok(one.code.includes("@binding(1) var<storage, read> x: array<vec4<f32>>;"));
  // Three parts: w, then w_1 and w_2 at the next free bindings.
  const three = rewriteUniformInputs(`${code}\n${uniformInputMarker("w", 3)}`);
  assert.deepEqual(three.inputs, [{ binding: 2, extra: [4, 5] }]);
  assert.ok(three.code.includes(`@group(0) @binding(4) var<uniform> w_1: ${array};`));
  assert.ok(three.code.includes(`@group(0) @binding(5) var<uniform> w_2: ${array};`));
  assert.deepEqual(rewriteUniformInputs(code), { code, inputs: [] });
  assert.throws(
    () =>
      rewriteUniformInputs(
        `${code.replace("w: array<vec4<f32>>", "w: array<f32>")}\n${uniformInputMarker("w")}`,
      ),
    /uniform input w: no vec4 storage binding/,
  );
  assert.throws(() => rewriteUniformInputs(`${code}\n${uniformInputMarker("v")}`), /input v/);
});

interface Layer {
  batch: number;
  hw: number;
  cin: number;
  cout: number;
  /** Uniform bindings the `.ubo` config reads the filter from (0: storage), fwd and bwdData. */
  parts: Record<"fwd" | "bwdData", number>;
}

const LAYERS: Layer[] = [
  // 36 KiB, vec4 both ways: one binding.
  { batch: 2, hw: 28, cin: 32, cout: 32, parts: { fwd: 1, bwdData: 1 } },
  // 72 KiB: a binding per filter row (24 KiB).
  { batch: 2, hw: 14, cin: 32, cout: 64, parts: { fwd: 3, bwdData: 3 } },
  // 216 KiB: a filter row (72 KiB) exceeds a binding: storage.
  { batch: 1, hw: 7, cin: 64, cout: 96, parts: { fwd: 0, bwdData: 0 } },
  // Rows of 5 pixels: no window, plain pixel rows: one binding, or storage over 64 KiB.
  { batch: 2, hw: 5, cin: 32, cout: 32, parts: { fwd: 1, bwdData: 1 } },
  { batch: 2, hw: 5, cin: 32, cout: 64, parts: { fwd: 0, bwdData: 0 } },
  // Cin 1: fwd reads w as vec4 along Cout; bwdData reads wt as scalars along Cin: storage.
  { batch: 2, hw: 9, cin: 1, cout: 8, parts: { fwd: 1, bwdData: 0 } },
  // Cout 6: fwd reads w as scalars (storage); bwdData reads wt as vec4 along Cin 8.
  { batch: 3, hw: 7, cin: 8, cout: 6, parts: { fwd: 0, bwdData: 1 } },
];

function run(view: "fwd" | "bwdData", l: Layer, cfg: TileConfig, w: tf.Tensor): tf.Tensor {
  const backend = tf.backend() as WebGPUBackend;
  const g = convGeometry([l.batch, l.hw, l.hw, l.cin], [3, 3, l.cin, l.cout], 1, "same");
  const input = view === "fwd"
    ? tf.tensor(seededUniform(l.batch * l.hw * l.hw * l.cin, 1), [l.batch, l.hw, l.hw, l.cin])
    : tf.tensor(seededUniform(l.batch * l.hw * l.hw * l.cout, 2), [l.batch, l.hw, l.hw, l.cout]);
  const out = view === "fwd"
    ? convForward(backend, input, w, g, "store", [], cfg)
    : convBackpropData(backend, input, w, g, cfg);
  input.dispose();
  return tf.engine().makeTensorFromTensorInfo(out);
}

// A seed per layer: filters drawn with one seed are prefixes of each other, and a stale
// uniform buffer would then still hold the right values.
const filterOf = (l: Layer) =>
  tf.tensor(seededUniform(9 * l.cin * l.cout, 3 + LAYERS.indexOf(l), -0.5, 0.5), [
    3,
    3,
    l.cin,
    l.cout,
  ]);

for (const view of ["fwd", "bwdData"] as const) {
  gpuTest(
    `${view}.r28c16v4.win.ubo: the outputs of .win, through uniform buffers where the filter ` +
      "(or each filter row, in a row window) fits one and is read as vec4",
    async () => {
      const stats = installUniformInputs(tf.backend());
      for (const l of LAYERS) {
        const w = filterOf(l);
        const plain = run(view, l, config(`${view}.r28c16v4.win`), w);
        const before = stats.copies;
        const ubo = run(view, l, config(`${view}.r28c16v4.win.ubo`), w);
        const expected = await plain.data(), got = await ubo.data();
        const what = `${view} ${l.hw}x${l.hw} ${l.cin}->${l.cout}`;
        assert.equal(stats.copies - before, l.parts[view], `${what}: parts copied`);
        assertBitIdentical(got, expected, what);
        tf.dispose([w, plain, ubo]);
      }
    },
  );
}

gpuTest(
  "one uniform buffer serves consecutive dispatches: each reads the filter written just before",
  async () => {
    // Two layers in one command encoder, the second filter computed on the GPU right before
    // its dispatch: a copy out of order would give the first dispatch the second filter.
    const l = LAYERS[0];
    const cfg = config("fwd.r28c16v4.win.ubo");
    const w = filterOf(l);
    const w2 = tf.mul(w, 2);
    const a = run("fwd", l, cfg, w);
    const b = run("fwd", l, cfg, w2);
    const [ya, yb] = [await a.data(), await b.data()];
    for (let i = 0; i < ya.length; i++) {
      if (!(yb[i] === 2 * ya[i])) assert.fail(`element ${i}: ${yb[i]} != 2 * ${ya[i]}`);
    }
    tf.dispose([w, w2, a, b]);
  },
);
