// The tile plan as a value: precedence of its parts, its validation as an op attribute, and that a
// model's plan reaches every conv view of a training step (forward, dx, dfilter) while a model
// without one runs the adapter's defaults.

import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { convGeometry } from "./geometry.ts";
import { defaultConfig, shapeKey } from "./tiling.ts";
import {
  backendAdapterKind,
  isTilePlan,
  pinTileConfig,
  planChoices,
  planOf,
  tileConfigFor,
  tilePlan,
} from "./tile_plan.ts";
import { convAttrs } from "./attrs.ts";
import { withFlags } from "../../flags.ts";
import { initTf } from "../../tf/setup.ts";
import { createModel } from "../../model/model.ts";
import { makeTrainStep } from "../../train/step.ts";
import { GPU_TEST, tileConfig as config } from "../../../test/helpers/op_check.ts";

const g = convGeometry([8, 28, 28, 32], [3, 3, 32, 32], 1, "same");

Deno.test("tileConfigFor: pinned over FMNIST_TILE_CONFIG over the table over the default", () => {
  const tabled = config("fwd.r16c16v4");
  const flagged = config("fwd.r8c8v4");
  const pinned = config("fwd.r4c4v1");
  const base = tilePlan("software");
  assert.equal(tileConfigFor(base, "fwd", g).id, defaultConfig("fwd", "software", g).id);
  assert.equal(
    tileConfigFor(tilePlan("discrete"), "fwd", g).id,
    defaultConfig("fwd", "discrete", g).id,
  );
  const table = tilePlan("software", { conv: new Map([[shapeKey("fwd", g), tabled]]) });
  assert.equal(tileConfigFor(table, "fwd", g).id, tabled.id);
  // The table holds for its shape class only.
  const other = convGeometry([8, 14, 14, 64], [3, 3, 64, 64], 1, "same");
  assert.equal(tileConfigFor(table, "fwd", other).id, defaultConfig("fwd", "software", other).id);
  withFlags({ FMNIST_TILE_CONFIG: flagged.id }, () => {
    assert.equal(tileConfigFor(table, "fwd", g).id, flagged.id);
    assert.equal(tileConfigFor(pinTileConfig(table, pinned), "fwd", g).id, pinned.id);
    // A flag for one view leaves the others alone.
    assert.equal(
      tileConfigFor(table, "bwdData", g).id,
      defaultConfig("bwdData", "software", g).id,
    );
  });
  withFlags({ FMNIST_TILE_CONFIG: "fwd.nope" }, () => {
    assert.throws(() => tileConfigFor(table, "fwd", g), /FMNIST_TILE_CONFIG: unknown tile config/);
  });
  // The last pin of a view wins; a pin of another view does not apply; the plan is unchanged.
  const twice = pinTileConfig(pinTileConfig(table, tabled), pinned);
  assert.equal(tileConfigFor(twice, "fwd", g).id, pinned.id);
  assert.equal(
    tileConfigFor(pinTileConfig(base, config("bwdData.r8c8v4")), "fwd", g).id,
    defaultConfig("fwd", "software", g).id,
  );
  assert.equal(table.pinned.length, 0);
  assert.ok(Object.isFrozen(twice));
  // A table entry of another view (a stale cache) is ignored.
  const stale = tilePlan("software", {
    conv: new Map([[shapeKey("fwd", g), config("bwdData.r8c8v4")]]),
  });
  assert.equal(tileConfigFor(stale, "fwd", g).id, defaultConfig("fwd", "software", g).id);
  // planChoices says what each problem runs.
  assert.deepEqual(
    [...planChoices(table, [{ view: "fwd", g }, { view: "fwd", g: other }])],
    [[shapeKey("fwd", g), tabled.id], [
      shapeKey("fwd", other),
      defaultConfig("fwd", "software", other).id,
    ]],
  );
});

Deno.test("tile plans as op attributes: only a TilePlan passes, one line naming the attr", () => {
  const plan = tilePlan("software");
  assert.ok(isTilePlan(plan));
  const lookalike = { kind: "software", conv: new Map(), dense: new Map(), pinned: [] };
  assert.ok(!isTilePlan(lookalike), "only tilePlan() makes plans");
  assert.ok(!isTilePlan({ ...plan }), "nor does a spread copy of one");
  assert.equal(convAttrs({ strides: 1, pad: "same", tiles: plan }).tiles, plan);
  assert.equal(convAttrs({ strides: 1, pad: "same" }).tiles, undefined);
  assert.throws(
    () => convAttrs({ strides: 1, pad: "same", tiles: { kind: "software" } }),
    /^UsageError: tiles must be a TilePlan/,
  );
  const backend = {};
  assert.equal(planOf({ tiles: plan }, backend), plan);
  assert.throws(() => planOf({ tiles: "fwd.r8c8v4" }, backend), /attrs.tiles must be a TilePlan/);
});

Deno.test("backendAdapterKind: Vulkan vendor ids of software rasterizers, browser names", () => {
  const kind = (vendor: string, architecture = "") =>
    backendAdapterKind({ adapterInfo: { vendor, architecture } });
  assert.equal(kind(String(0x10005)), "software", "Mesa (lavapipe)");
  assert.equal(kind(String(0x1ae0)), "software", "Google (SwiftShader)");
  assert.equal(kind("google", "swiftshader"), "software");
  assert.equal(kind(String(0x10de)), "discrete", "NVIDIA");
  assert.equal(kind("nvidia", "ampere"), "discrete");
});

/** The shader keys of every program run while `f` runs (conv GEMM keys name their config). */
function programsRun(f: () => void): string[] {
  const backend = tf.backend() as unknown as WebGPUBackend;
  const run = backend.runWebGPUProgram;
  const keys: string[] = [];
  backend.runWebGPUProgram = ((program: WebGPUProgram, ...rest: unknown[]) => {
    keys.push(program.shaderKey);
    return (run as (...a: unknown[]) => tf.TensorInfo).call(backend, program, ...rest);
  }) as typeof run;
  try {
    f();
  } finally {
    backend.runWebGPUProgram = run;
  }
  return keys;
}

Deno.test({
  name: "a model's tile plan reaches every conv view of its training step and its inference; " +
    "no plan: the defaults",
  ...GPU_TEST,
  fn: async () => {
    await initTf("webgpu");
    const kind = backendAdapterKind(tf.backend());
    // Configs no adapter kind has as a default, one per view.
    const pins = ["fwd.r8c8v4", "bwdData.r8c8v4", "bwdFilter.r8c16v4s32"].map(config);
    for (const p of pins) assert.notEqual(defaultConfig(p.view, kind, g).id, p.id);
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 1) as tf.Tensor4D;
    const y = tf.cast(tf.oneHot(tf.tensor1d([1, 2, 3, 4], "int32"), 10), "float32") as tf.Tensor2D;
    const stepKeys = (pinned: boolean) => {
      const model = createModel("enhanced", { ops: "fused", seed: 1 });
      model.tiles = pinned ? pins.reduce(pinTileConfig, tilePlan(kind)) : undefined;
      const optimizer = tf.train.adam(1e-3);
      const step = makeTrainStep(model, optimizer);
      try {
        let keys: string[] = [];
        tf.tidy(() => {
          keys = programsRun(() => {
            step(x, y).dispose();
            model.predict(x).dispose(); // inference: the folded-BN forward and the dense layers
          });
        });
        return keys.filter((k) => k.startsWith("convGemm_"));
      } finally {
        optimizer.dispose();
        model.dispose();
      }
    };
    try {
      const pinned = stepKeys(true);
      for (const p of pins) {
        assert.ok(pinned.some((k) => k.startsWith(`convGemm_${p.id}_`)), `${p.id} ran`);
      }
      // Every conv GEMM of the step ran a pinned config: nothing fell back to a default.
      assert.ok(
        pinned.every((k) => pins.some((p) => k.startsWith(`convGemm_${p.id}_`))),
        pinned.join(),
      );
      const plain = stepKeys(false);
      assert.ok(plain.length > 0);
      for (const p of pins) {
        assert.ok(
          !plain.some((k) => k.startsWith(`convGemm_${p.id}_`)),
          `${p.id} not without a plan`,
        );
      }
    } finally {
      tf.dispose([x, y]);
    }
  },
});
