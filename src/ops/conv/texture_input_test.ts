// Inputs read through textures (TileConfig.inputInTexture, `.tex` configs; src/tf/uniform_inputs.ts
// binds rgba32float copies): the module rewrite, and that a `.tex` config gives exactly the
// outputs of the same tile reading storage (the same arithmetic in the same order: bit-identical
// is the expectation) in all three views, the fused bnReluDz prologue of the filter gradient
// included, through a texture where the operand is read as vec4, from storage elsewhere. The
// tensors span several texture rows and end mid-row (the copy's two parts). The reference
// comparisons over random shapes are the property tests of the ops, which run every config
// (allConfigs) including these.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { convGeometry } from "./geometry.ts";
import { convBackpropData, convBackpropFilter, convForward } from "./gemm.ts";
import { type TileConfig } from "./tiling.ts";
import {
  installUniformInputs,
  rewriteUniformInputs,
  TEXTURE_WIDTH,
  textureInputMarker,
} from "../../tf/uniform_inputs.ts";
import { gpuTest, seededUniform, tileConfig as config } from "../../../test/helpers/op_check.ts";
import { assertBitIdentical } from "../../../test/helpers/compare.ts";

Deno.test("rewriteUniformInputs: a texture-input binding becomes NAME_tex, NAME a private stand-in", () => {
  const code = [
    "@group(0) @binding(0) var<storage, read_write> result: array<vec4<f32>>;",
    "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;",
    "@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;",
    "fn getX(i : i32) -> vec4<f32> { return x[i]; }",
  ].join("\n");
  const r = rewriteUniformInputs(`${code}\n${textureInputMarker("x")}`);
  assert.deepEqual(r.inputs, [{ binding: 1, extra: [], texture: true }]);
  assert.ok(r.code.includes("@group(0) @binding(1) var x_tex: texture_2d<f32>;"));
  assert.ok(r.code.includes("var<private> x: array<vec4<f32>, 1>;"));
  assert.ok(!r.code.includes("var<storage, read> x:"));
  assert.ok(r.code.includes("@binding(2) var<storage, read> w: array<vec4<f32>>;"));
  assert.throws(
    () =>
      rewriteUniformInputs(
        `${code.replace("x: array<vec4<f32>>", "x: array<f32>")}\n${textureInputMarker("x")}`,
      ),
    /texture input x: no vec4 storage binding/,
  );
});

interface Layer {
  batch: number;
  hw: number;
  cin: number;
  cout: number;
  /**
   * Textures each view's `.tex` config binds (0: its operands stay in storage), for the window
   * configs (filter in uniform buffers where it fits) and the plain register tiles (the filter
   * in a texture too where it is read as vec4).
   */
  windows: Textures;
  plain: Textures;
}

type View = "fwd" | "bwdData" | "bwdFilter" | "bwdFilterFused";
type Textures = Record<View, number>;

function t(fwd: number, bwdData: number, bwdFilter: number, bwdFilterFused: number): Textures {
  return { fwd, bwdData, bwdFilter, bwdFilterFused };
}

const LAYERS: Layer[] = [
  // x and dz: 3 x 28 x 28 x 32 floats = 4.6 texture rows of TEXTURE_WIDTH vec4s.
  { batch: 3, hw: 28, cin: 32, cout: 32, windows: t(1, 1, 2, 3), plain: t(2, 2, 2, 3) },
  { batch: 2, hw: 14, cin: 32, cout: 64, windows: t(1, 1, 2, 3), plain: t(2, 2, 2, 3) },
  // Cin 1: x (and bwdData's dx columns) are scalars (VA or VB 1).
  { batch: 2, hw: 9, cin: 1, cout: 8, windows: t(0, 1, 1, 2), plain: t(1, 2, 1, 2) },
  // Cout 6: dz and the output columns of fwd are scalars.
  { batch: 3, hw: 7, cin: 8, cout: 6, windows: t(1, 0, 1, 1), plain: t(1, 1, 1, 1) },
  // Rows of 5 pixels: no window (the window configs run as pixel or filter rows).
  { batch: 2, hw: 5, cin: 32, cout: 32, windows: t(1, 1, 2, 3), plain: t(2, 2, 2, 3) },
];

function tensor(l: Layer, channels: number, seed: number): tf.Tensor {
  const shape = [l.batch, l.hw, l.hw, channels];
  return tf.tensor(seededUniform(shape.reduce((a, b) => a * b), seed), shape);
}

/** One view of layer `l` under `cfg` from inputs drawn with `seed`. */
function run(view: View, l: Layer, cfg: TileConfig, seed: number): tf.Tensor {
  const backend = tf.backend() as WebGPUBackend;
  const g = convGeometry([l.batch, l.hw, l.hw, l.cin], [3, 3, l.cin, l.cout], 1, "same");
  const w = tf.tensor(seededUniform(9 * l.cin * l.cout, seed + 1, -0.5, 0.5), [
    3,
    3,
    l.cin,
    l.cout,
  ]);
  const x = tensor(l, l.cin, seed + 2);
  const dz = tensor(l, l.cout, seed + 3);
  const z = tensor(l, l.cout, seed + 4);
  const terms = tf.tensor(seededUniform(7 * l.cout, seed + 5, 0.5, 1.5), [7, l.cout]);
  const out = view === "fwd"
    ? convForward(backend, x, w, g, "store", [], cfg)
    : view === "bwdData"
    ? convBackpropData(backend, dz, w, g, cfg)
    : view === "bwdFilter"
    ? convBackpropFilter(backend, dz, x, g, cfg)
    : convBackpropFilter(backend, { dy: dz, z, terms }, x, g, cfg);
  tf.dispose([w, x, dz, z, terms]);
  return tf.engine().makeTensorFromTensorInfo(out);
}

/** Each view's config without textures, and the textures its `.tex` twin binds per layer. */
const PAIRS: [View, string, (l: Layer) => number][] = [
  ["fwd", "fwd.r28c16v4.win.ubo", (l) => l.windows.fwd],
  ["bwdData", "bwdData.r28c16v4.win.ubo", (l) => l.windows.bwdData],
  ["bwdFilter", "bwdFilter.r8c16v4s32.win", (l) => l.windows.bwdFilter],
  ["bwdFilterFused", "bwdFilter.r8c16v4s32.win", (l) => l.windows.bwdFilterFused],
  ["fwd", "fwd.r16c32v4", (l) => l.plain.fwd],
  ["bwdData", "bwdData.r16c32v4", (l) => l.plain.bwdData],
  ["bwdFilter", "bwdFilter.r16c32v4s32", (l) => l.plain.bwdFilter],
  ["bwdFilterFused", "bwdFilter.r16c32v4s32", (l) => l.plain.bwdFilterFused],
];

for (const [view, id, expectedTextures] of PAIRS) {
  gpuTest(
    `${id}.tex (${view}): the outputs of ${id}, its vec4 operands read through textures`,
    async () => {
      const stats = installUniformInputs(tf.backend());
      for (const l of LAYERS) {
        const what = `${view} ${l.batch}x${l.hw}x${l.hw} ${l.cin}->${l.cout}`;
        // Copies per run: the `.ubo` filter's (the same in both) plus one per texture.
        const start = stats.copies;
        const plain = run(view, l, config(id), 10 * LAYERS.indexOf(l));
        const before = stats.copies;
        const tex = run(view, l, config(`${id}.tex`), 10 * LAYERS.indexOf(l));
        const textures = (stats.copies - before) - (before - start);
        assert.equal(textures, expectedTextures(l), `${what}: textures`);
        const expected = await plain.data(), got = await tex.data();
        assertBitIdentical(got, expected, what);
        tf.dispose([plain, tex]);
      }
    },
  );
}

gpuTest(
  "one input texture serves consecutive dispatches: each reads the input written just before",
  async () => {
    // x and 2x (computed on the GPU right before) through the same texture in one encoder: a
    // copy out of order would give the first dispatch the second input.
    const backend = tf.backend() as WebGPUBackend;
    const l = LAYERS[0];
    assert.ok(l.batch * l.hw * l.hw * l.cin / 4 > 4 * TEXTURE_WIDTH);
    const g = convGeometry([l.batch, l.hw, l.hw, l.cin], [3, 3, l.cin, l.cout], 1, "same");
    const cfg = config("fwd.r28c16v4.win.ubo.tex");
    const w = tf.tensor(seededUniform(9 * l.cin * l.cout, 7, -0.5, 0.5), [3, 3, l.cin, l.cout]);
    const x = tensor(l, l.cin, 8);
    const x2 = tf.mul(x, 2);
    const a = tf.engine().makeTensorFromTensorInfo(convForward(backend, x, w, g, "store", [], cfg));
    const b = tf.engine().makeTensorFromTensorInfo(
      convForward(backend, x2, w, g, "store", [], cfg),
    );
    const [ya, yb] = [await a.data(), await b.data()];
    for (let i = 0; i < ya.length; i++) {
      if (!(yb[i] === 2 * ya[i])) assert.fail(`element ${i}: ${yb[i]} != 2 * ${ya[i]}`);
    }
    tf.dispose([w, x, x2, a, b]);
  },
);
