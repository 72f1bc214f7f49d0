// The code generation a software adapter gets: /proc/cpuinfo flags with Mesa's
// GALLIUM_OVERRIDE_CPU_CAPS applied the way util/u_cpu_detect.c applies it.

import assert from "node:assert/strict";
import { cpuCodegen, probeCpuCodegen } from "./cpu_features.ts";

const cpuinfo = (flags: string) =>
  `processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: ${flags}\n\n` +
  `processor\t: 1\nflags\t\t: fpu sse avx512f avx512vl avx2 avx fma\n`;
const ZEN5 = cpuinfo("fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512vl");
const ZEN3 = cpuinfo("fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma");

Deno.test("cpu features: AVX-512 (f and vl) gives 32 vector registers, AVX2 16", () => {
  assert.deepEqual(cpuCodegen(ZEN5, undefined), {
    avx512: true,
    avx2: true,
    vectorRegisters: 32,
    override: "",
  });
  assert.deepEqual(cpuCodegen(ZEN3, undefined), {
    avx512: false,
    avx2: true,
    vectorRegisters: 16,
    override: "",
  });
  // Only the first processor block counts (the second one here lists avx512f).
  assert.equal(cpuCodegen(ZEN3, undefined).avx512, false);
  // avx512f without avx512vl (Knights Landing): no EVEX ymm16-31 at 256 bits.
  assert.equal(cpuCodegen(cpuinfo("sse4_2 avx avx2 fma avx512f"), undefined).avx512, false);
  // x86 without AVX2: 16 registers, no AVX2.
  assert.deepEqual(cpuCodegen(cpuinfo("sse sse2 sse4_1 sse4_2 avx"), undefined), {
    avx512: false,
    avx2: false,
    vectorRegisters: 16,
    override: "",
  });
});

Deno.test("cpu features: GALLIUM_OVERRIDE_CPU_CAPS masks what Mesa masks", () => {
  // "avx": AVX-512 off, AVX2/FMA kept (an AVX2-only CPU's code generation).
  assert.deepEqual(cpuCodegen(ZEN5, "avx"), {
    avx512: false,
    avx2: true,
    vectorRegisters: 16,
    override: "avx",
  });
  // Lower levels clear AVX and AVX2 too.
  for (const level of ["sse4.1", "ssse3", "sse3", "sse2", "sse", "nosse"]) {
    const c = cpuCodegen(ZEN5, level);
    assert.equal(c.avx512, false, level);
    assert.equal(c.avx2, false, level);
    assert.equal(c.override, level);
  }
  // Values Mesa does not know (exact match, like its strcmp) change nothing.
  for (const value of ["", "AVX", "avx2", "avx512"]) {
    assert.deepEqual(cpuCodegen(ZEN5, value), cpuCodegen(ZEN5, undefined), value);
  }
  // An override never adds what the CPU lacks.
  assert.equal(cpuCodegen(ZEN3, "avx").avx2, true);
  assert.equal(cpuCodegen(ZEN3, "avx").avx512, false);
});

Deno.test("cpu features: without /proc/cpuinfo nothing is known", () => {
  assert.deepEqual(cpuCodegen(null, undefined), {
    avx512: false,
    avx2: false,
    vectorRegisters: 0,
    override: "",
  });
  // An ARM cpuinfo has "Features", no "flags".
  assert.equal(cpuCodegen("processor\t: 0\nFeatures\t: fp asimd\n", "avx").vectorRegisters, 0);
});

Deno.test("cpu features: this machine's probe agrees with its /proc/cpuinfo", () => {
  let text: string | null = null;
  try {
    text = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    // not Linux
  }
  assert.deepEqual(probeCpuCodegen(), cpuCodegen(text, Deno.env.get("GALLIUM_OVERRIDE_CPU_CAPS")));
});
