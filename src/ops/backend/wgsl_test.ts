import assert from "node:assert/strict";
import { EMBEDDED_WGSL_GLOBAL, normalizeWgslPath, readAllWgsl, wgsl } from "./wgsl.ts";

const INCLUDE = /^\s*#include\s/m;

Deno.test("wgsl: every kernel expands with no #include left and each snippet once", async () => {
  const all = await readAllWgsl();
  const paths = Object.keys(all);
  assert.ok(paths.includes("wgsl/channel_sums.wgsl"), paths.join(", "));
  assert.ok(paths.includes("max_pool2/max_pool2_grad.wgsl"), paths.join(", "));
  for (const path of paths) {
    const src = wgsl(path);
    assert.ok(!INCLUDE.test(src), `${path} still has an #include after expansion`);
  }
  // The pool-gradient kernel of the fused block includes the pool route and the channel sums;
  // their functions appear exactly once.
  const fused = wgsl("conv_bias_relu_pool2/max_pool2_relu_bias_grad.wgsl");
  for (const snippet of ["wgsl/max_pool2_route.wgsl", "wgsl/channel_sums.wgsl"]) {
    const firstLine = all[snippet].split("\n").find((l) => /^fn /.test(l));
    assert.ok(firstLine, `${snippet} defines a function`);
    assert.equal(fused.split(firstLine).length - 1, 1, `${snippet} included once`);
  }
});

Deno.test("wgsl: paths stay inside src/ops and resolve ..", () => {
  assert.equal(normalizeWgslPath("max_pool2/../wgsl/x.wgsl"), "wgsl/x.wgsl");
  assert.equal(normalizeWgslPath("./a/./b.wgsl"), "a/b.wgsl");
  assert.throws(() => normalizeWgslPath("../kernels/x.wgsl"), /leaves src\/ops/);
});

Deno.test("wgsl: a bundle's table is read instead of the disk; cycles and gaps are named", () => {
  const g = globalThis as Record<string, unknown>;
  g[EMBEDDED_WGSL_GLOBAL] = {
    "t/a.wgsl": '#include "b.wgsl"\nfn a() {}',
    "t/b.wgsl": '#include "../u/c.wgsl"\nfn b() {}',
    "u/c.wgsl": "fn c() {}",
    "t/loop.wgsl": '#include "loop2.wgsl"',
    "t/loop2.wgsl": '#include "loop.wgsl"',
    "t/gap.wgsl": '#include "missing.wgsl"',
  };
  try {
    assert.equal(wgsl("t/a.wgsl"), "fn c() {}\nfn b() {}\nfn a() {}");
    assert.throws(() => wgsl("t/loop.wgsl"), /include cycle: t\/loop.wgsl -> t\/loop2.wgsl/);
    assert.throws(() => wgsl("t/gap.wgsl"), /src\/ops\/t\/missing.wgsl is not in the bundle/);
  } finally {
    delete g[EMBEDDED_WGSL_GLOBAL];
  }
});
