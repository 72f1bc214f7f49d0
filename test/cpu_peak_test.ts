// bench/cpu_peak.ts: the CPU's FMA peak from /proc/cpuinfo-style text, each factor's source.

import assert from "node:assert/strict";
import { cpuPeakFrom, describeCpuPeak, jitVectorBits, readCpuSources } from "../bench/cpu_peak.ts";

/** A /proc/cpuinfo with one block per (core id, flags). */
function cpuinfo(
  p: { model: string; vendor?: string; family?: number; modelNo?: number; mhz?: number },
  cores: [physical: number, core: number][],
  flags: string,
): string {
  return cores.map(([phys, core], i) =>
    [
      `processor\t: ${i}`,
      `vendor_id\t: ${p.vendor ?? "GenuineIntel"}`,
      `cpu family\t: ${p.family ?? 6}`,
      `model\t\t: ${p.modelNo ?? 85}`,
      `model name\t: ${p.model}`,
      ...(p.mhz ? [`cpu MHz\t\t: ${p.mhz}`] : []),
      `physical id\t: ${phys}`,
      `core id\t\t: ${core}`,
      `flags\t\t: fpu sse sse2 ${flags}`,
    ].join("\n")
  ).join("\n\n") + "\n";
}

Deno.test("cpuPeak: AVX-512 Zen 5 VM: 2 cores x 2 x 16 x 2 x cpu MHz", () => {
  const src = {
    cpuinfo: cpuinfo(
      { model: "AMD EPYC", vendor: "AuthenticAMD", family: 26, modelNo: 2, mhz: 2596.12 },
      [[0, 0], [0, 1]],
      "avx fma avx2 avx512f avx512vl",
    ),
    maxFreqKHz: null,
    logicalCpus: 2,
  };
  const p = cpuPeakFrom(src, 256);
  assert.deepEqual([p.cores, p.fmaUnits, p.lanes, p.isa], [2, 2, 16, "AVX-512"]);
  assert.ok(Math.abs(p.gflopPerS - 2 * 2 * 16 * 2 * 2.59612) < 1e-9);
  assert.match(p.clockSource, /cpu MHz/);
  assert.deepEqual(p.atVectorBits && [p.atVectorBits.lanes, p.atVectorBits.bits], [8, 256]);
  assert.ok(Math.abs(p.atVectorBits!.gflopPerS - p.gflopPerS / 2) < 1e-9);
  const text = describeCpuPeak(p).join("\n");
  assert.match(text, /2 cores x 2 FMA units x 16 lanes \(AVX-512\) x 2 x 2\.60 GHz = 332 GFLOP\/s/);
  assert.match(text, /assumption: FMA units: 2 per core/);
  assert.match(text, /assumption: clock: all cores sustain the reported clock/);
});

Deno.test("cpuPeak: AVX2 host with SMT: siblings share a core; cpufreq max clock wins", () => {
  const src = {
    cpuinfo: cpuinfo(
      { model: "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", mhz: 800 },
      [[0, 0], [0, 1], [0, 0], [0, 1]],
      "avx fma avx2",
    ),
    maxFreqKHz: 4_600_000,
    logicalCpus: 4,
  };
  const p = cpuPeakFrom(src);
  assert.deepEqual([p.cores, p.logicalCpus, p.lanes, p.isa], [2, 4, 8, "AVX2+FMA"]);
  assert.equal(p.clockGHz, 4.6);
  assert.match(p.clockSource, /cpuinfo_max_freq/);
  assert.equal(p.gflopPerS, 2 * 2 * 8 * 2 * 4.6);
  assert.equal(p.atVectorBits, null);
});

Deno.test("cpuPeak: the known exceptions and the fallbacks are stated as assumptions", () => {
  const zen4 = cpuPeakFrom({
    cpuinfo: cpuinfo(
      { model: "AMD EPYC 9654", vendor: "AuthenticAMD", family: 25, modelNo: 17, mhz: 2400 },
      [[0, 0]],
      "avx fma avx2 avx512f",
    ),
    maxFreqKHz: null,
    logicalCpus: 1,
  });
  assert.equal(zen4.lanes, 8);
  assert.ok(zen4.assumptions.some((a) => /Zen 4/.test(a)));
  const silver = cpuPeakFrom({
    cpuinfo: cpuinfo(
      { model: "Intel(R) Xeon(R) Silver 4210 CPU @ 2.20GHz" },
      [[0, 0]],
      "fma avx2 avx512f",
    ),
    maxFreqKHz: null,
    logicalCpus: 1,
  });
  assert.deepEqual([silver.fmaUnits, silver.lanes, silver.clockGHz], [1, 16, 2.2]);
  assert.match(silver.clockSource, /model name/);
  const noFma = cpuPeakFrom({
    cpuinfo: cpuinfo({ model: "Old CPU", mhz: 2000 }, [[0, 0]], "avx"),
    maxFreqKHz: null,
    logicalCpus: 1,
  });
  assert.deepEqual([noFma.isa, noFma.gflopPerS], ["no FMA", 0]);
  const nothing = cpuPeakFrom({ cpuinfo: "", maxFreqKHz: null, logicalCpus: 3 });
  assert.deepEqual([nothing.cores, nothing.clockGHz, nothing.clockSource], [3, 2.5, "assumed"]);
  assert.ok(nothing.assumptions.some((a) => /2\.5 GHz assumed/.test(a)));
});

Deno.test("jitVectorBits and readCpuSources on this machine", () => {
  assert.equal(jitVectorBits("llvmpipe (LLVM 15.0.6, 256 bits)"), 256);
  assert.equal(jitVectorBits("SwiftShader Device (Subzero)"), null);
  const src = readCpuSources();
  if (Deno.build.os === "linux") {
    const p = cpuPeakFrom(src);
    assert.ok(p.cores >= 1 && p.clockGHz > 0, JSON.stringify(p));
    assert.equal(p.logicalCpus, navigator.hardwareConcurrency);
  }
});
