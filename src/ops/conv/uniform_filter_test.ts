// The filter read through a uniform buffer (TileConfig.filterInUniform, `.ubo` configs;
// src/tf/uniform_inputs.ts): the module rewrite, and that a `.ubo` config gives exactly the
// outputs of the same tile reading storage (the WGSL body is the same: bit-identical is the
// expectation), through the uniform buffer where the filter fits one binding and is read as vec4,
// from storage elsewhere. The reference comparisons over random shapes are the property tests
// of the ops, which run every config (allConfigs) including these.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { convGeometry } from "./geometry.ts";
import { convBackpropData, convForward } from "./gemm.ts";
import { configById, type TileConfig } from "./tiling.ts";
import {
  installUniformInputs,
  rewriteUniformInputs,
  UNIFORM_INPUT_BYTES,
  uniformInputMarker,
} from "../../tf/uniform_inputs.ts";
import { gpuTest, seededUniform } from "../../../test/helpers/op_check.ts";

const config = (id: string): TileConfig => {
  const c = configById(id);
  if (!c) throw new Error(`no tile config ${id}`);
  return c;
};

Deno.test("rewriteUniformInputs: the marked vec4 binding becomes a 64 KiB uniform array", () => {
  const code = [
    "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;",
    "@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;",
    uniformInputMarker("w"),
  ].join("\n");
  const out = rewriteUniformInputs(code);
  assert.deepEqual(out.bindings, [2]);
  assert.match(
    out.code,
    new RegExp(`@binding\\(2\\) var<uniform> w: array<vec4<f32>, ${UNIFORM_INPUT_BYTES / 16}>;`),
  );
  assert.match(out.code, /@binding\(1\) var<storage, read> x: array<vec4<f32>>;/);
  assert.deepEqual(rewriteUniformInputs(code.replace(uniformInputMarker("w"), "")).bindings, []);
  assert.throws(
    () => rewriteUniformInputs(code.replace("w: array<vec4<f32>>", "w: array<f32>")),
    /uniform input w: no vec4 storage binding/,
  );
  assert.throws(() => rewriteUniformInputs(`${code}\n${uniformInputMarker("v")}`), /input v/);
});

interface Layer {
  batch: number;
  hw: number;
  cin: number;
  cout: number;
  /** Whether the `.ubo` config reads the filter from the uniform buffer, fwd and bwdData. */
  uniform: Record<"fwd" | "bwdData", boolean>;
}

const LAYERS: Layer[] = [
  // 36 KiB, vec4 both ways.
  { batch: 2, hw: 28, cin: 32, cout: 32, uniform: { fwd: true, bwdData: true } },
  // 72 KiB: over one binding, storage.
  { batch: 2, hw: 14, cin: 32, cout: 64, uniform: { fwd: false, bwdData: false } },
  // Cin 1: fwd reads w as vec4 along Cout; bwdData reads wt as scalars along Cin: storage.
  { batch: 2, hw: 9, cin: 1, cout: 8, uniform: { fwd: true, bwdData: false } },
  // Cout 6: fwd reads w as scalars (storage); bwdData reads wt as vec4 along Cin 8.
  { batch: 3, hw: 7, cin: 8, cout: 6, uniform: { fwd: false, bwdData: true } },
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
    `${view}.r28c16v4.win.ubo: the outputs of .win, through the uniform buffer where the filter ` +
      "fits and is read as vec4",
    async () => {
      const stats = installUniformInputs(tf.backend());
      for (const l of LAYERS) {
        const w = filterOf(l);
        const plain = run(view, l, config(`${view}.r28c16v4.win`), w);
        const before = stats.copies;
        const ubo = run(view, l, config(`${view}.r28c16v4.win.ubo`), w);
        const expected = await plain.data(), got = await ubo.data();
        const what = `${view} ${l.hw}x${l.hw} ${l.cin}->${l.cout}`;
        assert.equal(stats.copies - before, l.uniform[view] ? 1 : 0, `${what}: copies`);
        assert.equal(got.length, expected.length);
        for (let i = 0; i < got.length; i++) {
          if (!(got[i] === expected[i])) {
            assert.fail(`${what}: element ${i} ${got[i]} != ${expected[i]}`);
          }
        }
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
