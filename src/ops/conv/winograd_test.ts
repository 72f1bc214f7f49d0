// Winograd F(2x2, 3x3) convolution (src/ops/conv/winograd*.ts): forward (every epilogue),
// backward-data and filter gradient under every Winograd tile configuration, against the float64
// direct references, NaN-poisoned outputs (intermediate buffers too):
//   1. the float64 Winograd reference equals the direct references (the matrices are right);
//   2. random 3x3 stride-1 shapes (batch, H, W, Cin, Cout, same/valid) x every Winograd config;
//   3. every conv layer shape of the three models (batch 2);
//   4. a Winograd config resolved for a shape it does not serve runs the direct default;
//   5. batches whose transformed buffers would pass the storage-binding limit run in chunks.
//
// Tolerance, derived per element (winograd_ref.ts): every output is a sum of products of
// transformed inputs, each path through at most k roundings, so
//   |computed - exact| <= gamma(k) * S,   gamma(k) = k u / (1 - k u), u = 2^-24,
// where S is the same computation on |x|, |w| with every entry of B^T, G, A^T replaced by its
// absolute value (winograd*Ref(..., abs = true)), and k = roundingDepth(view): C + 12 for the
// forward and backward-data (C = the reduction's channels), 2 * tiles + 10 for the filter gradient.
// The entries of the matrices set how large S gets against the direct method's sum of |x w|:
// |G| rows sum to at most 3/2 (2.25x per filter tile), |B^T| rows to 2 (4x per input tile),
// |A^T| rows to 3, so S is up to ~10x the direct magnitude per output. The epilogues add one
// rounding of z*scale + shift: gamma(k) * (|scale| S + |shift|) (k counts it). A wrong
// coefficient or a lost plane errs by O(S), orders of magnitude past the bound (checked by
// breaking a transform on purpose).

import fc from "fast-check";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { type ConvGeometry, convGeometry, forEachConvTap } from "./geometry.ts";
import { convBackpropRef } from "../conv_bn_relu/conv_bn_relu_grad_ref.ts";
import {
  gamma32,
  roundingDepth,
  winogradBackpropDataRef,
  winogradBackpropFilterRef,
  winogradForwardRef,
} from "./winograd_ref.ts";
import { convBackpropData, convBackpropFilter, convForward } from "./gemm.ts";
import {
  batchChunks,
  winogradFilterSplits,
  winogradServes,
  withWinogradBindingCap,
} from "./winograd.ts";
import { CAPPED_LOOP_BUDGET, withLoopCapped } from "../backend/loop_cap.ts";
import type { ConvEpilogue } from "./gemm_wgsl.ts";
import { allConfigs, CONV_VIEWS, type TileConfig } from "./tiling.ts";
import { pinTileConfig, tileConfigFor, tilePlan } from "./tile_plan.ts";
import { architecture } from "../../model/model.ts";
import {
  CHANNELS,
  GPU_TEST,
  gpuPropertyTest,
  gpuTest,
  runs,
  seededUniform,
} from "../../../test/helpers/op_check.ts";

const WINOGRAD: TileConfig[] = CONV_VIEWS.flatMap((v) => allConfigs(v)).filter((c) => c.winograd);

interface Case {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  pad: "same" | "valid";
  seed: number;
}

const describe = (c: Case) =>
  `x=[${c.n},${c.h},${c.w},${c.cin}] 3x3->${c.cout} ${c.pad} seed=${c.seed}`;

/** Float64 direct forward (the tap walk of the host references). */
function conv2dF64(x: Float32Array, w: Float32Array, g: ConvGeometry): Float64Array {
  const z = new Float64Array(g.batch * g.outH * g.outW * g.outC);
  forEachConvTap(g, (zRow, xRow, wTap) => {
    for (let ci = 0; ci < g.inC; ci++) {
      for (let co = 0; co < g.outC; co++) {
        z[zRow + co] += x[xRow + ci] * w[(wTap + ci) * g.outC + co];
      }
    }
  });
  return z;
}

/** Every element within its own bound; NaN fails. Throws naming the first offenders. */
function checkBound(
  label: string,
  actual: ArrayLike<number>,
  exact: ArrayLike<number>,
  bound: (i: number) => number,
): void {
  if (actual.length !== exact.length) {
    throw new Error(`${label}: length ${actual.length} != ${exact.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < exact.length; i++) {
    const d = Math.abs(actual[i] - exact[i]);
    if (!(d <= bound(i))) {
      count++;
      if (bad.length < 5) {
        bad.push(
          `[${i}] got ${actual[i]} want ${exact[i]} (|diff| ${d.toExponential(2)} > ${
            bound(i).toExponential(2)
          })`,
        );
      }
    }
  }
  if (count > 0) {
    throw new Error(`${label}: ${count}/${exact.length} elements off: ${bad.join(", ")}`);
  }
}

interface Data {
  g: ConvGeometry;
  x: Float32Array;
  w: Float32Array;
  dz: Float32Array;
  scale: Float32Array;
  shift: Float32Array;
}

function caseData(c: Case): Data {
  const g = convGeometry([c.n, c.h, c.w, c.cin], [3, 3, c.cin, c.cout], 1, c.pad);
  return {
    g,
    x: seededUniform(c.n * c.h * c.w * c.cin, c.seed),
    w: seededUniform(9 * c.cin * c.cout, c.seed + 1),
    dz: seededUniform(c.n * g.outH * g.outW * c.cout, c.seed + 2),
    scale: seededUniform(c.cout, c.seed + 3, 0.5, 2),
    shift: seededUniform(c.cout, c.seed + 4, -0.5, 0.5),
  };
}

async function values(info: tf.TensorInfo): Promise<Float32Array> {
  const t = tf.engine().makeTensorFromTensorInfo(info);
  const v = await t.data() as Float32Array;
  t.dispose();
  return v;
}

/** The epilogues with their exact form, as the output transform applies them. */
const EPILOGUES: { name: ConvEpilogue; scale: boolean; shift: boolean; relu: boolean }[] = [
  { name: "store", scale: false, shift: false, relu: false },
  { name: "bias", scale: false, shift: true, relu: false },
  { name: "biasRelu", scale: false, shift: true, relu: true },
  { name: "scaleShiftRelu", scale: true, shift: true, relu: true },
];

/** Runs `config`'s view on webgpu and checks it against the float64 direct result. */
async function checkView(c: Case, config: TileConfig, epilogueIndex = 0): Promise<void> {
  const d = caseData(c);
  const { g } = d;
  const backend = tf.backend() as unknown as WebGPUBackend;
  const t = (a: Float32Array, shape: number[]) => tf.tensor(a, shape);
  const x = t(d.x, [g.batch, g.inH, g.inW, g.inC]);
  const w = t(d.w, [3, 3, g.inC, g.outC]);
  const dz = t(d.dz, [g.batch, g.outH, g.outW, g.outC]);
  const scale = t(d.scale, [g.outC]);
  const shift = t(d.shift, [g.outC]);
  const label = `${config.id} ${describe(c)}`;
  const gam = gamma32(roundingDepth(config.view, g));
  try {
    if (config.view === "fwd") {
      const e = EPILOGUES[epilogueIndex];
      const perChannel = e.scale ? [scale, shift] : e.shift ? [shift] : [];
      const got = await values(convForward(backend, x, w, g, e.name, perChannel, config));
      const z = conv2dF64(d.x, d.w, g);
      const s = winogradForwardRef(d.x, d.w, g, true);
      const exact = z.map((v, i) => {
        const co = i % g.outC;
        const y = v * (e.scale ? d.scale[co] : 1) + (e.shift ? d.shift[co] : 0);
        return e.relu ? Math.max(y, 0) : y;
      });
      checkBound(`${label} ${e.name}`, got, exact, (i) => {
        const co = i % g.outC;
        return gam * (s[i] * (e.scale ? d.scale[co] : 1) + (e.shift ? Math.abs(d.shift[co]) : 0));
      });
    } else if (config.view === "bwdData") {
      const got = await values(convBackpropData(backend, dz, w, g, config));
      const s = winogradBackpropDataRef(d.dz, d.w, g, true);
      checkBound(label, got, convBackpropRef(d.dz, null, d.w, g).dx, (i) => gam * s[i]);
    } else {
      const got = await values(convBackpropFilter(backend, dz, x, g, config));
      const s = winogradBackpropFilterRef(d.dz, d.x, g, true);
      checkBound(label, got, convBackpropRef(d.dz, d.x, null, g).dfilter, (i) => gam * s[i]);
    }
  } finally {
    tf.dispose([x, w, dz, scale, shift]);
  }
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 1, max: 9 }),
  w: fc.integer({ min: 1, max: 9 }),
  cin: fc.constantFrom(...CHANNELS),
  cout: fc.constantFrom(...CHANNELS),
  pad: fc.constantFrom("same" as const, "valid" as const),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
}).map((c) => (c.pad === "valid" ? { ...c, h: Math.max(c.h, 3), w: Math.max(c.w, 3) } : c));

Deno.test("winograd reference: equals the direct float64 convolution in all three views", () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const d = caseData(c);
      const ref = convBackpropRef(d.dz, d.x, d.w, d.g);
      const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
        // float64 sums of a few hundred terms of magnitude <= 10: 1e-12 leaves 100x.
        checkBound(`${what} ${describe(c)}`, a, b, () => 1e-12);
      };
      close(winogradForwardRef(d.x, d.w, d.g), conv2dF64(d.x, d.w, d.g), "forward");
      close(winogradBackpropDataRef(d.dz, d.w, d.g), ref.dx, "backward-data");
      close(winogradBackpropFilterRef(d.dz, d.x, d.g), ref.dfilter, "filter gradient");
    }),
    { seed: 2101, numRuns: runs(40) },
  );
});

/** Each Winograd config on a fixed case with partial tiles (odd Ho, Wo) and padded channels. */
const FIXED: Case[] = [
  { n: 2, h: 7, w: 5, cin: 5, cout: 12, pad: "same", seed: 7 },
  { n: 1, h: 8, w: 9, cin: 8, cout: 3, pad: "valid", seed: 8 },
];

gpuPropertyTest(
  "winograd: every config and view matches the float64 direct convolution within the derived bound",
  fc.record({
    c: caseArb,
    config: fc.constantFrom(...WINOGRAD),
    epilogue: fc.integer({ min: 0, max: EPILOGUES.length - 1 }),
  }),
  ({ c, config, epilogue }) => checkView(c, config, epilogue),
  {
    seed: 2102,
    numRuns: WINOGRAD.length * FIXED.length + runs(16),
    examples: WINOGRAD.flatMap((config) =>
      FIXED.map((c, i): [{ c: Case; config: TileConfig; epilogue: number }] => [{
        c,
        config,
        epilogue: i + 2, // biasRelu, scaleShiftRelu on the forward
      }])
    ),
  },
);

gpuTest("winograd: every epilogue of the forward", async () => {
  const fwd = WINOGRAD.find((c) => c.view === "fwd")!;
  for (let e = 0; e < EPILOGUES.length; e++) {
    await checkView({ n: 2, h: 6, w: 7, cin: 4, cout: 8, pad: "same", seed: 30 + e }, fwd, e);
  }
});

/** Every 3x3 layer shape of the models (channels, size, padding), at batch 2. */
function modelCases(): Case[] {
  const seen = new Set<string>();
  const out: Case[] = [];
  for (const name of ["baseline", "enhanced", "wide"] as const) {
    for (const l of architecture(name)) {
      if (l.kind !== "conv-relu" && l.kind !== "conv-bn-relu") continue;
      const s = l.shape;
      const key = `${s.h}x${s.w}x${s.cin}>${s.cout}${s.pad}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        n: 2,
        h: s.h,
        w: s.w,
        cin: s.cin,
        cout: s.cout,
        pad: s.pad,
        seed: 40 + out.length,
      });
    }
  }
  return out;
}

for (const c of modelCases()) {
  gpuTest(
    `winograd: model layer ${describe(c)}, all views (software and discrete configs)`,
    async () => {
      for (const config of WINOGRAD) await checkView(c, config, config.view === "fwd" ? 2 : 0);
    },
  );
}

Deno.test({
  name: "winograd: a config resolved for a shape it does not serve gives the direct default",
  ...GPU_TEST,
  fn: () => {
    const stride2 = convGeometry([1, 8, 8, 4], [3, 3, 4, 4], 2, "same");
    const k5 = convGeometry([1, 8, 8, 4], [5, 5, 4, 4], 1, "same");
    const k3 = convGeometry([1, 8, 8, 4], [3, 3, 4, 4], 1, "same");
    for (const config of WINOGRAD) {
      const plan = pinTileConfig(tilePlan(config.kind), config);
      for (const g of [stride2, k5]) {
        const got = tileConfigFor(plan, config.view, g);
        if (got.winograd) {
          throw new Error(`${config.id} resolved for ${g.kH}x${g.kH} s${g.strideH}`);
        }
      }
      if (tileConfigFor(plan, config.view, k3).id !== config.id) {
        throw new Error(`${config.id} not used for a 3x3 stride-1 conv`);
      }
      // A device whose storage bindings cannot hold one image's transformed buffers.
      const tiny = { device: { limits: { maxStorageBufferBindingSize: 1024 } } };
      if (tileConfigFor(plan, config.view, k3, tiny as never).winograd) {
        throw new Error(`${config.id} resolved past the binding limit`);
      }
    }
  },
});

Deno.test("winograd: batches run in chunks whose transformed buffers fit one storage binding", () => {
  const limit = 128 * 2 ** 20; // WebGPU's default maxStorageBufferBindingSize (llvmpipe's too)
  const at = (batch: number) => convGeometry([batch, 28, 28, 32], [3, 3, 32, 32], 1, "same");
  // 14 x 14 tiles per image, 16 planes of 8 vec4 (16 bytes) per tile: 401,408 bytes per image,
  // so 334 images per chunk.
  assertEq(JSON.stringify(batchChunks(at(128), limit)), "[[0,128]]", "b128");
  assertEq(JSON.stringify(batchChunks(at(512), limit)), "[[0,256],[256,256]]", "b512");
  assertEq(JSON.stringify(batchChunks(at(5), 2 * 401408)), "[[0,2],[2,2],[4,1]]", "b5");
  assertEq(JSON.stringify(batchChunks(at(3), 1)), "[[0,1],[1,1],[2,1]]", "b3, one image past");
  for (const view of CONV_VIEWS) {
    assertEq(winogradServes(view, at(512), limit), true, `${view} b512`);
    assertEq(winogradServes(view, at(1), 1000), false, `${view}: one image past the limit`);
    const k5 = convGeometry([1, 8, 8, 4], [5, 5, 4, 4], 1, "same");
    assertEq(winogradServes(view, k5, limit), false, `${view} 5x5`);
  }
});

gpuTest("winograd: every view in batch chunks (one to three images each)", async () => {
  const c: Case = { n: 5, h: 9, w: 8, cin: 8, cout: 12, pad: "same", seed: 60 };
  const perImage = 16 * 16 * 5 * 4 * 3; // 5 x 4 tiles, up to 3 channel vec4s
  for (const cap of [perImage, 3 * perImage]) {
    await withWinogradBindingCap(cap, async () => {
      for (const config of WINOGRAD) await checkView(c, config, config.view === "fwd" ? 3 : 0);
    });
  }
});

function assertEq<T>(a: T, b: T, label: string): void {
  if (a !== b) throw new Error(`${label}: got ${a}, want ${b}`);
}

Deno.test("winograd: the filter gradient's tile slices stay within the loop budget of a capped adapter", () => {
  const config = WINOGRAD.find((c) => c.view === "bwdFilter")!;
  const one = { ...config, splitK: 1 };
  withLoopCapped(true, () => {
    const s = winogradFilterSplits(one, 200_000);
    assertEq(s.rowsPerSplit <= CAPPED_LOOP_BUDGET, true, `capped: ${s.rowsPerSplit} tiles a slice`);
    assertEq(s.rowsPerSplit * s.numSplits >= 200_000, true, "capped: every tile in a slice");
  });
  withLoopCapped(false, () => {
    assertEq(
      JSON.stringify(winogradFilterSplits(one, 200_000)),
      '{"rowsPerSplit":200000,"numSplits":1}',
      "uncapped",
    );
  });
});
