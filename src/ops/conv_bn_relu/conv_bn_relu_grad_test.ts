// Backward of the fused conv + batch-norm + ReLU op (ConvBnReluTrainGrad, ConvBnReluTrainParamGrads,
// ConvBackpropData and the gradient of ConvBnReluTrain), checked on random shapes (fast-check,
// seeded):
//   1. the generated WGSL kernels under every backward tile configuration (bwdData and
//      bwdFilter candidates of conv/tiling.ts, each pinned on the fixed edge cases, plus random
//      (case, config) pairs), and the naive oracle kernels, vs the plain-loop CPU reference;
//   2. the CPU reference vs tf.grads of the stock chain (conv2d, moments, batchNorm, relu) on
//      the cpu backend, loss = sum(y * dy);
//   3. end to end: tf.grads through the public convBnReluTrain on webgpu (random tile configs of
//      all views) vs the stock chain on cpu; dx is not computed when x needs no gradient.
// Tolerances (pass rule |a - e| <= atol + rtol*|e|, per gradient): atol is scaled by the sum of
// |terms| behind one element (gradScales), because dx, dfilter, dgamma and dbeta are float32 sums
// whose rounding error grows with their terms, not with the result (dfilter and dgamma add
// M = N*Ho*Wo products; dz itself is a difference of three such sums). A relative L2 bound
// checks each whole array. FMNIST_SOAK=1 runs many more cases.

import fc from "fast-check";
import assert, { throws } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../tf/setup.ts";
import { convBnReluTrain } from "./conv_bn_relu.ts";
import { convBnReluTrainStock } from "./conv_bn_relu_stock.ts";
import { CONV_BACKPROP_DATA } from "../conv_backprop/conv_backprop.ts";
import {
  CONV_BN_RELU_TRAIN_FILTER_GRADS,
  CONV_BN_RELU_TRAIN_GRAD,
  CONV_BN_RELU_TRAIN_PARAM_GRADS,
} from "./conv_bn_relu.ts";
import { convBnReluGradRef, type ConvBnReluGrads } from "./conv_bn_relu_grad_ref.ts";
import { compareArrays } from "../../../test/helpers/compare.ts";
import {
  configuredCases,
  type ConvCase,
  convCaseArb,
  describeCase,
  fixedCase,
  GPU_TEST,
  gpuPropertyTest,
  gpuTest,
  runs,
  TILE_EDGE_CASES,
  tileConfigPropertyTest,
  withGpu,
  withTileConfig,
} from "../../../test/helpers/op_check.ts";
import {
  attrsOf,
  BN_GRID_CASES,
  caseTensors,
  checkGrads,
  fixedGradCase,
  type GradCaseData,
  KERNEL_TOL,
  kernelAttrsOf,
  makeCaseData,
  NAMES,
  readAll,
  runGradKernel,
  type Tol,
} from "../../../test/helpers/conv_bn_relu_checks.ts";

// ---- random cases: shapes from fast-check, values from a seeded generator, z and stats from
// the forward reference.

type GradCase = ConvCase;
const gradCaseArb = convCaseArb();
// Multiples of 4 take the vec4 paths; 12 and 20 leave partial channel tiles.
const vec4CaseArb = convCaseArb([4, 8, 12, 20]);
const describeGradCase = describeCase;

// Anything vs tfjs's stock chain: it also rounds z, the moments and the batch-norm chain in
// float32 in another order (x - mean, then / sqrt(var + eps), ...).
const STOCK_TOL: Tol = { scaledAtol: 1e-4, rtol: 1e-3, relL2: 1e-3 };

/** Gradients of sum(stockChain(x, filter, gamma, beta).y * dy) on the cpu backend. */
async function stockGradsOnCpu(c: GradCase, d: GradCaseData): Promise<ConvBnReluGrads> {
  await initTf("cpu");
  const t = caseTensors(c, d);
  const grads = tf.grads((x, filter, gamma, beta) => {
    const r = convBnReluTrainStock(
      x as tf.Tensor4D,
      filter as tf.Tensor4D,
      gamma as tf.Tensor1D,
      beta as tf.Tensor1D,
      attrsOf(c, d),
    );
    return tf.sum(tf.mul(r.y, t.dy));
  })([t.x, t.filter, t.gamma, t.beta]);
  const r = await readAll(grads);
  tf.dispose([...grads, ...Object.values(t)]);
  return r;
}

/** The backward kernel on the current backend vs the CPU reference (kernel tolerances). */
async function checkGradKernel(c: GradCase, label: string): Promise<void> {
  const d = makeCaseData(c);
  const r = await runGradKernel(c, d);
  checkGrads(r, convBnReluGradRef(d, d.geometry), d, KERNEL_TOL, `${label} ${describeGradCase(c)}`);
}

Deno.test(
  "ConvBnReluTrainGrad: hand-checkable identities on webgpu and cpu",
  GPU_TEST,
  async () => {
    // No ReLU clipping (beta = 10) and dy = 1: the loss is sum(gamma * xhat + beta), whose
    // gradient w.r.t. z vanishes (xhat sums to 0 over the batch), so dx = dfilter = 0, dbeta = M,
    // dgamma = sum xhat = 0. With beta = -10 every output is clipped: all gradients are 0.
    const c: GradCase = fixedCase({ x: [2, 5, 4, 3], k: 3, cout: 5, seed: 7 });
    for (const backend of ["cpu", "webgpu"] as const) {
      for (const beta of [10, -10]) {
        const d = makeCaseData(c);
        d.beta.fill(beta);
        d.dy.fill(1);
        const r = backend === "webgpu"
          ? await withGpu(() => runGradKernel(c, d))
          : await initTf("cpu").then(() => runGradKernel(c, d));
        const m = c.n * c.h * c.w;
        const zeros = (n: number) => new Float32Array(n);
        const expected: ConvBnReluGrads = {
          dx: zeros(d.x.length),
          dfilter: zeros(d.filter.length),
          dgamma: zeros(c.cout),
          dbeta: new Float32Array(c.cout).fill(beta > 0 ? m : 0),
        };
        for (const name of NAMES) {
          const res = compareArrays(r[name], expected[name], { atol: 1e-4, rtol: 1e-5 }, name);
          if (!res.ok) throw new Error(`${backend} beta=${beta}: ${res.message}`);
        }
      }
    }
  },
);

// The register bwdData kernels read the filter as it is except at Cout % 4 != 0 with
// Cin % 4 == 0 (GemmWidths.directFilter): the edge cases cover the direct reads at va/vb 4/4,
// 1/1 and 4/1; this one pins the transposed copy (va 1, vb 4) on every config.
const TRANSPOSED_FILTER_CASE: ConvCase = fixedCase({
  x: [2, 6, 5, 8],
  k: 3,
  cout: 5,
  seed: 14,
  strides: [2, 1],
});
tileConfigPropertyTest(
  "ConvBnReluTrainGrad: every backward tile config matches the CPU reference",
  ["bwdData", "bwdFilter"],
  [...TILE_EDGE_CASES, TRANSPOSED_FILTER_CASE],
  (c, config) => checkGradKernel(c, config.id),
  { seed: 20261125, quickRuns: 20 },
);

gpuPropertyTest(
  "ConvBnReluTrainGrad: naive oracle kernels (FMNIST_NAIVE_KERNELS) match the CPU reference",
  gradCaseArb,
  (c) => checkGradKernel(c, "naive"),
  { seed: 20261126, numRuns: runs(10), naive: true },
);

gpuPropertyTest(
  "ConvBnReluTrainGrad: vec4 paths (channels % 4 == 0) match the CPU reference",
  vec4CaseArb,
  (c) => checkGradKernel(c, "vec4"),
  { seed: 4444, numRuns: runs(15) },
);

gpuTest(
  "ConvBnReluTrainParamGrads: dfilter stays right past 65,535 output pixels (loop cap)",
  async () => {
    // The model-input layer at batch 96: M = 96*28*28 = 75,264 pixels. llvmpipe silently stops
    // a loop after 65,535 iterations, so a kernel that loops over all of M per invocation gets
    // ~13% of the sum wrong; the split reduction must not.
    const { c, d, expected } = fixedGradCase({ x: [96, 28, 28, 1], k: 3, cout: 8, seed: 21 });
    const r = await runGradKernel(c, d, CONV_BN_RELU_TRAIN_PARAM_GRADS); // r.dx holds dz
    const label = `large M ${describeGradCase(c)}`;
    checkGrads({ ...r, dx: expected.dx }, expected, d, KERNEL_TOL, label);
  },
);

Deno.test(
  "ConvBnReluTrainGrad: a new batch size reuses the compiled pipelines",
  GPU_TEST,
  async () => {
    // Shapes travel as uniforms and shader keys hold compile-time facts only, so only the first
    // call compiles (seconds per shader on llvmpipe).
    await withGpu(async () => {
      const backend = tf.backend() as unknown as { pipelineCache: Record<string, unknown> };
      const pipelines = async (n: number) => {
        const c: GradCase = {
          n,
          h: 8,
          w: 8,
          cin: 8,
          cout: 8,
          kh: 3,
          kw: 3,
          strides: [1, 1],
          pad: "same",
          seed: n,
        };
        const d = makeCaseData(c);
        const t = caseTensors(c, d);
        const outs = tf.engine().runKernel(
          CONV_BN_RELU_TRAIN_GRAD,
          t,
          kernelAttrsOf(c, d),
        ) as tf.Tensor[];
        await readAll(outs);
        tf.dispose([...outs, ...Object.values(t)]);
        return Object.keys(backend.pipelineCache)
          .filter((k) => /^(convGemm_bwd|bnReluBwd_|convSumPartials|convFilterTranspose)/.test(k))
          .sort();
      };
      const first = await pipelines(2);
      const second = await pipelines(3);
      if (first.length < 5 || JSON.stringify(second) !== JSON.stringify(first)) {
        throw new Error(
          `pipelines after batch 2: ${first.length}, after batch 3: ${second.length}`,
        );
      }
    });
  },
);

Deno.test("ConvBnReluTrainGrad: a mis-shaped input is refused, naming the tensor", async () => {
  await initTf("cpu");
  const c: GradCase = fixedCase({ x: [1, 4, 4, 2], k: 3, cout: 3, seed: 3, strides: [2, 2] });
  const d = makeCaseData(c);
  const t = caseTensors(c, d);
  const bad = { ...t, stats: tf.zeros([2, c.cout]) };
  try {
    throws(
      () => tf.engine().runKernel(CONV_BN_RELU_TRAIN_GRAD, bad, kernelAttrsOf(c, d)),
      /ConvBnReluTrainGrad: stats must have shape \[3,3\], got \[2,3\]/,
    );
  } finally {
    tf.dispose([...Object.values(t), bad.stats]);
  }
});

Deno.test("ConvBnReluTrainGrad: CPU reference matches tf.grads of the stock chain", async () => {
  await fc.assert(
    fc.asyncProperty(gradCaseArb, async (c) => {
      const d = makeCaseData(c);
      const expected = await stockGradsOnCpu(c, d);
      const ref = convBnReluGradRef(d, d.geometry);
      checkGrads(ref, expected, d, STOCK_TOL, `ref vs stock ${describeGradCase(c)}`);
    }),
    { seed: 11251335, numRuns: runs(30) },
  );
});

/** tf.grads of sum(convBnReluTrain(...).y * dy) w.r.t. `wrt` on the current backend. */
function fusedGrads(
  c: GradCase,
  d: GradCaseData,
  t: ReturnType<typeof caseTensors>,
  wrt: ("x" | "filter" | "gamma" | "beta")[],
): tf.Tensor[] {
  const all = { x: t.x, filter: t.filter, gamma: t.gamma, beta: t.beta };
  return tf.grads((...args: tf.Tensor[]) => {
    const v = { ...all, ...Object.fromEntries(wrt.map((k, i) => [k, args[i]])) };
    const r = convBnReluTrain(
      v.x as tf.Tensor4D,
      v.filter as tf.Tensor4D,
      v.gamma as tf.Tensor1D,
      v.beta as tf.Tensor1D,
      attrsOf(c, d),
    );
    return tf.sum(tf.mul(r.y, t.dy));
  })(wrt.map((k) => all[k]));
}

Deno.test(
  "convBnReluTrain: tf.grads on webgpu match the stock chain on cpu",
  GPU_TEST,
  async () => {
    const { arb } = configuredCases(["fwd", "bwdData", "bwdFilter"]);
    await fc.assert(
      fc.asyncProperty(arb, async ({ c: plain, config }) => {
        const c = withTileConfig(plain, config);
        const d = makeCaseData(c);
        const expected = await stockGradsOnCpu(c, d);
        const r = await withGpu(async () => {
          const t = caseTensors(c, d);
          const grads = fusedGrads(c, d, t, ["x", "filter", "gamma", "beta"]);
          const r = await readAll(grads);
          tf.dispose([...grads, ...Object.values(t)]);
          return r;
        });
        checkGrads(
          r,
          expected,
          d,
          STOCK_TOL,
          `fused webgpu (${config.id}) vs stock cpu ${describeGradCase(c)}`,
        );
      }),
      { seed: 5318008, numRuns: runs(12) },
    );
  },
);

gpuTest(
  "convBnReluTrain: no dx is computed when x needs no gradient (model-input layer)",
  async () => {
    const { c, d, expected } = fixedGradCase({ x: [2, 6, 6, 1], k: 3, cout: 8, seed: 9 });
    const t = caseTensors(c, d);
    const kernelsOf = async (wrt: ("x" | "filter" | "gamma" | "beta")[]) => {
      let grads: tf.Tensor[] = [];
      const info = await tf.profile(() => {
        grads = fusedGrads(c, d, t, wrt);
        return grads;
      });
      const values = await Promise.all(grads.map((g) => g.data()));
      tf.dispose(grads);
      return { names: info.kernelNames, values };
    };
    const params = await kernelsOf(["filter", "gamma", "beta"]);
    assert.ok(!params.names.includes(CONV_BACKPROP_DATA), params.names.join(" "));
    assert.ok(params.names.includes(CONV_BN_RELU_TRAIN_PARAM_GRADS), params.names.join(" "));
    const withX = await kernelsOf(["x", "filter"]);
    assert.ok(withX.names.includes(CONV_BACKPROP_DATA), withX.names.join(" "));
    tf.dispose(Object.values(t));
    // Same filter gradient either way (tolerances as in the kernel tests).
    const [dfilter, dgamma, dbeta] = params.values;
    checkGrads(
      { dx: expected.dx, dfilter, dgamma, dbeta },
      expected,
      d,
      KERNEL_TOL,
      "params only",
    );
    checkGrads(
      {
        dx: withX.values[0],
        dfilter: withX.values[1],
        dgamma: expected.dgamma,
        dbeta: expected.dbeta,
      },
      expected,
      d,
      KERNEL_TOL,
      "x and filter",
    );
  },
);

/**
 * The model-input layer's backward (ConvBnReluTrainFilterGrads: no dz pass; dz is computed
 * inside the filter pass on register configs) vs the CPU reference, at kernel tolerances.
 */
async function checkFilterGradsKernel(c: GradCase, label: string): Promise<void> {
  const d = makeCaseData(c);
  const expected = convBnReluGradRef(d, d.geometry);
  const t = caseTensors(c, d);
  const outs = tf.engine().runKernel(CONV_BN_RELU_TRAIN_FILTER_GRADS, t, {
    ...kernelAttrsOf(c, d),
    inputGradient: false,
  }) as tf.Tensor[];
  const [dfilter, dgamma, dbeta] = await Promise.all(outs.map((o) => o.data()));
  tf.dispose([...outs, ...Object.values(t)]);
  const r = { dx: expected.dx, dfilter, dgamma, dbeta };
  checkGrads(r, expected, d, KERNEL_TOL, `${label} ${describeGradCase(c)}`);
}

gpuTest(
  "ConvBnReluTrainFilterGrads (inputGradient: false): every bwdFilter config matches the reference",
  async () => {
    // dz is computed inside the filter pass (no dz pass) on register configs; staged configs
    // and the naive path materialise it. Same tolerances as the full backward.
    const { arb, examples, numRuns } = configuredCases(["bwdFilter"], TILE_EDGE_CASES);
    await fc.assert(
      fc.asyncProperty(
        arb,
        ({ c, config }) => checkFilterGradsKernel(withTileConfig(c, config), config.id),
      ),
      { seed: 20261127, numRuns: numRuns(10), examples },
    );
  },
);

Deno.test({
  name: "ConvBnReluTrainGrad: chunked batch-norm grid edges (one chunk, partial chunks and blocks)",
  ...GPU_TEST,
  fn: async () => {
    // The dz pass (each workgroup merges the reduce pass's partials; chunk 0 writes dbeta and
    // dgamma) and the model-input layer's sums pass; then the naive reduce (one partial).
    await withGpu(async () => {
      for (const c of BN_GRID_CASES) {
        await checkGradKernel(c, "grid");
        await checkFilterGradsKernel(c, "grid, inputGradient: false");
      }
    });
    await withGpu(async () => {
      for (const c of BN_GRID_CASES) await checkGradKernel(c, "grid, naive");
    }, { naive: true });
  },
});

gpuTest(
  "convBnReluTrain (inputGradient: false): tf.grads w.r.t. the parameters work, w.r.t. x throws",
  async () => {
    const c: GradCase = fixedCase({ x: [2, 6, 6, 1], k: 3, cout: 8, seed: 19 });
    const d = makeCaseData(c);
    const expected = await withGpu(async () => {
      const t = caseTensors(c, d);
      const g = fusedGrads(c, d, t, ["filter", "gamma", "beta"]);
      const v = await Promise.all(g.map((q) => q.data()));
      tf.dispose([...g, ...Object.values(t)]);
      return v;
    });
    const t = caseTensors(c, d);
    const attrs = { ...attrsOf(c, d), inputGradient: false };
    const loss = (x: tf.Tensor, filter: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) =>
      tf.sum(tf.mul(
        convBnReluTrain(
          x as tf.Tensor4D,
          filter as tf.Tensor4D,
          gamma as tf.Tensor1D,
          beta as tf.Tensor1D,
          attrs,
        ).y,
        t.dy,
      ));
    const g = tf.grads((f, gm, b) => loss(t.x, f, gm, b))([t.filter, t.gamma, t.beta]);
    const got = await Promise.all(g.map((q) => q.data()));
    for (let i = 0; i < 3; i++) {
      const r = compareArrays(got[i], expected[i], { atol: 1e-5, rtol: 1e-4 }, `grad ${i}`);
      assert.ok(r.ok, r.message);
    }
    assert.throws(
      () => tf.grads((x) => loss(x, t.filter, t.gamma, t.beta))([t.x]),
      /gradient w.r.t. x was requested from a layer built with inputGradient: false/,
    );
    tf.dispose([...g, ...Object.values(t)]);
  },
);
