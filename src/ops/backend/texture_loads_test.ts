// Hand-written kernels (pools, batch norm) reading their vec4 inputs through textures
// (texture_loads.ts) give exactly
// what they give reading storage (the same arithmetic: bit-identical is the expectation), and do
// use the textures when switched on; scalar inputs (C % 4 != 0) stay in storage. The
// comparisons with the CPU references over random shapes are the ops' own property tests, which
// run whichever path the load-cost probe picks on the test machine; this file holds the other
// one to it.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { inputLoadFunctions, setTextureLoads } from "./texture_loads.ts";
import { installUniformInputs, textureInputMarker } from "../../tf/uniform_inputs.ts";
import { MAX_POOL2, MAX_POOL2_GRAD } from "../max_pool2/max_pool2.ts";
import { MAX_POOL2_RELU_BIAS_GRAD } from "../conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { gpuTest, seededUniform } from "../../../test/helpers/op_check.ts";
import { assertBitIdentical } from "../../../test/helpers/compare.ts";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { convGeometry } from "../conv/geometry.ts";
import { defaultTilePlan } from "../conv/tile_plan.ts";
import { runBnReluTrain } from "../conv_bn_relu/conv_bn_relu_fwd.ts";
import { convBnReluParamGradsWebGPU } from "../conv_bn_relu/conv_bn_relu_bwd.ts";

Deno.test("inputLoadFunctions: storage loads, or marked texel fetches", () => {
  assert.equal(
    inputLoadFunctions(["x"], "VT", false),
    "fn load_x(i : i32) -> VT {\n  return x[i];\n}",
  );
  const tex = inputLoadFunctions(["dy", "x"], "VT", true);
  assert.ok(tex.includes(textureInputMarker("dy")) && tex.includes(textureInputMarker("x")));
  assert.ok(tex.includes("fn load_x(i : i32) -> vec4<f32> {\n  return textureLoad(x_tex, "));
});

/** Each case: the kernel, its inputs' shapes, the textures it binds at C % 4 == 0. */
const CASES: {
  kernel: string;
  inputs: Record<string, (c: number) => number[]>;
  textures: number;
}[] = [
  { kernel: MAX_POOL2, inputs: { x: (c) => [3, 28, 28, c] }, textures: 1 },
  {
    kernel: MAX_POOL2_GRAD,
    inputs: { dy: (c) => [3, 14, 14, c], x: (c) => [3, 28, 28, c] },
    textures: 2,
  },
  {
    kernel: MAX_POOL2_RELU_BIAS_GRAD,
    inputs: { dy: (c) => [3, 6, 6, c], y: (c) => [3, 13, 13, c] },
    textures: 2,
  },
];

for (const { kernel, inputs, textures } of CASES) {
  gpuTest(`${kernel}: the same outputs through textures as from storage`, async () => {
    const stats = installUniformInputs(tf.backend());
    for (const channels of [32, 6]) {
      const run = async (on: boolean) => {
        setTextureLoads(on ? "on" : "off");
        try {
          const named: tf.NamedTensorMap = {};
          Object.entries(inputs).forEach(([name, shape], i) => {
            const s = shape(channels);
            named[name] = tf.tensor(seededUniform(s.reduce((a, b) => a * b), 5 + i), s);
          });
          const before = stats.copies;
          const out = tf.engine().runKernel(kernel, named, {});
          const outs = Array.isArray(out) ? out : [out];
          const values = await Promise.all(outs.map((t) => (t as tf.Tensor).data()));
          tf.dispose([...Object.values(named), ...(outs as tf.Tensor[])]);
          return { values, copies: stats.copies - before };
        } finally {
          setTextureLoads("auto");
        }
      };
      const plain = await run(false);
      const tex = await run(true);
      assert.equal(plain.copies, 0);
      assert.equal(tex.copies, channels % 4 === 0 ? textures : 0, `C ${channels}: textures`);
      plain.values.forEach((expected, k) =>
        assertBitIdentical(tex.values[k], expected, `C ${channels} output ${k}`)
      );
    }
  });
}

gpuTest("batch-norm passes: the same outputs through textures as from storage", async () => {
  const backend = tf.backend() as WebGPUBackend;
  const stats = installUniformInputs(backend);
  for (const cout of [32, 6]) {
    const [n, hw, cin] = [3, 14, 8];
    const g = convGeometry([n, hw, hw, cin], [3, 3, cin, cout], 1, "same");
    const t = (shape: number[], seed: number, lo = -1, hi = 1) =>
      tf.tensor(seededUniform(shape.reduce((a, b) => a * b), seed, lo, hi), shape);
    const z = t([n, hw, hw, cout], 1), dy = t([n, hw, hw, cout], 2), x = t([n, hw, hw, cin], 3);
    const filter = t([3, 3, cin, cout], 4, -0.5, 0.5);
    const gamma = t([cout], 5, 0.5, 1.5), beta = t([cout], 6, -0.2, 0.2);
    const run = async (on: boolean) => {
      setTextureLoads(on ? "on" : "off");
      try {
        const before = stats.copies;
        const [y, st] = runBnReluTrain(backend, z, gamma, beta, 1e-3);
        const grads = convBnReluParamGradsWebGPU(
          backend,
          { dy, x, filter, gamma, beta, z, stats: st },
          g,
          defaultTilePlan(backend),
        );
        const outs = [y, st, ...grads].map((i) => tf.engine().makeTensorFromTensorInfo(i));
        const values = await Promise.all(outs.map((o) => o.data()));
        tf.dispose(outs);
        return { values, copies: stats.copies - before };
      } finally {
        setTextureLoads("auto");
      }
    };
    const plain = await run(false);
    const tex = await run(true);
    // stats and apply read z; the reduce and dz passes dy and z (the filter pass, the same in
    // both runs, binds its own).
    assert.equal(tex.copies - plain.copies, cout % 4 === 0 ? 6 : 0, `Cout ${cout}: textures`);
    plain.values.forEach((expected, k) =>
      assertBitIdentical(tex.values[k], expected, `Cout ${cout} output ${k}`)
    );
    tf.dispose([z, dy, x, filter, gamma, beta]);
  }
});
