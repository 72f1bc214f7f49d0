// What code a software adapter's shader compiler (Mesa's llvmpipe/lavapipe: LLVM) generates on
// this CPU: whether it has AVX-512, i.e. 32 vector registers, or only AVX2's 16. The autotune
// cache key (autotune.ts's cpuIdentity) names Mesa's override. The software tile defaults do not
// depend on it: under AVX2 code generation they stay the fastest direct configs on Mesa 25.0 and
// within 1.25x of the fastest (two larger windows, tuner candidates) on 22.3, and tiles sized for
// 16 registers lose on both (BENCHMARKS.md, "AVX2 code generation (emulated)").
//
// Mesa decides from CPUID and then applies GALLIUM_OVERRIDE_CPU_CAPS (util/u_cpu_detect.c,
// check_cpu_caps_override): each value clears one extension and everything above it, so "avx"
// clears AVX-512 and keeps AVX/AVX2/FMA, "sse4.1" clears AVX too, "nosse" everything; other
// values are ignored. Read from the machine code of a running lavapipe kernel (gdb, Mesa 22.3.6
// and 25.0.7, Zen 5 EPYC): natively LLVM uses ymm16-ymm31 (AVX-512VL), with "avx" only
// ymm0-ymm15, as on an AVX2-only CPU; with "sse4.1" the adapter reports "128 bits".

/** The x86 levels GALLIUM_OVERRIDE_CPU_CAPS accepts, lowest first, each clearing what follows. */
const OVERRIDE_LEVELS = ["nosse", "sse", "sse2", "sse3", "ssse3", "sse4.1", "avx"] as const;

export interface CpuCodegen {
  /** The CPU's code generation has AVX-512 (avx512f and avx512vl, not masked by the override). */
  avx512: boolean;
  /** It has AVX2 (8-lane float vectors, FMA), not masked by the override. */
  avx2: boolean;
  /** Vector registers LLVM can use: 32 with AVX-512VL, else 16 on x86-64; 0 where unknown. */
  vectorRegisters: 0 | 16 | 32;
  /** GALLIUM_OVERRIDE_CPU_CAPS where it is one Mesa honours, else "". */
  override: string;
}

/**
 * The code generation Mesa's LLVM gets from /proc/cpuinfo's `flags` (first processor) and
 * GALLIUM_OVERRIDE_CPU_CAPS. Pure: probeCpuCodegen reads both. Without cpuinfo (not Linux, no
 * read permission) or its flags, nothing is known: vectorRegisters 0.
 */
export function cpuCodegen(cpuinfo: string | null, overrideCaps: string | undefined): CpuCodegen {
  const level = OVERRIDE_LEVELS.indexOf(overrideCaps as typeof OVERRIDE_LEVELS[number]);
  const override = level >= 0 ? overrideCaps! : "";
  const flagsLine = cpuinfo?.split(/\n\s*\n/)[0].match(/^flags\s*:(.*)$/m)?.[1];
  if (flagsLine === undefined) return { avx512: false, avx2: false, vectorRegisters: 0, override };
  const flags = new Set(flagsLine.trim().split(/\s+/));
  // An override at "avx" or below clears AVX-512; at "sse4.1" or below AVX and AVX2 as well.
  const keepsAvx512 = level < 0;
  const keepsAvx2 = level < 0 || OVERRIDE_LEVELS[level] === "avx";
  const avx2 = keepsAvx2 && flags.has("avx") && flags.has("avx2") && flags.has("fma");
  const avx512 = keepsAvx512 && avx2 && flags.has("avx512f") && flags.has("avx512vl");
  return { avx512, avx2, vectorRegisters: avx512 ? 32 : 16, override };
}

let probed: CpuCodegen | undefined;

/** cpuCodegen of this machine, read once (no --allow-read / --allow-env: what is readable). */
export function probeCpuCodegen(): CpuCodegen {
  if (probed) return probed;
  let cpuinfo: string | null = null;
  try {
    cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    // not Linux, or no --allow-read
  }
  let override: string | undefined;
  try {
    override = Deno.env.get("GALLIUM_OVERRIDE_CPU_CAPS");
  } catch {
    // no --allow-env
  }
  probed = cpuCodegen(cpuinfo, override);
  return probed;
}
