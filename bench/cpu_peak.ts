// The CPU's single-precision FMA peak: cores x FMA units x lanes x 2 x clock. On a software
// adapter (lavapipe, SwiftShader) every kernel runs on these cores, so this, not the roofline
// matmul, is the ceiling that says how much of the machine a kernel uses.
//
// What the machine tells (Linux: /proc/cpuinfo, /sys/devices/system/cpu/cpu0/cpufreq) and what is
// assumed, each stated in the derivation:
//   cores   distinct (physical id, core id) pairs; SMT siblings share their core's FMA units.
//   lanes   f32 lanes of the widest FMA the flags allow: avx512f 16, avx2 + fma 8, fma 4 (the
//           flags also say when there is no FMA at all: then no FMA peak).
//   units   not in any flag: assumed 2 FMA pipes per core (Intel Haswell to Sapphire Rapids,
//           AMD Zen 2 to Zen 5). Known exceptions: Xeon Silver/Bronze (1 AVX-512 FMA unit), Zen 4
//           (AMD family 25 with avx512f: 512-bit FMAs run as two 256-bit halves, so 8 lanes),
//           Zen 1 / Zen+ (family 23 before model 0x30: 128-bit pipes, so 4 lanes).
//   clock   cpufreq's cpuinfo_max_freq (the highest clock, boost included) where it exists, else
//           /proc/cpuinfo's "cpu MHz" (in a VM: the clock the hypervisor reports, usually the
//           nominal one), else "@ x.xxGHz" in the model name, else 2.5 GHz assumed. All cores
//           are assumed to sustain that clock under FMA load, which real parts may not.

export interface CpuPeak {
  model: string;
  cores: number;
  /** Logical CPUs (threads) the kernel scheduler sees. */
  logicalCpus: number;
  /** "AVX-512", "AVX2+FMA", "FMA (128-bit)", or "no FMA". */
  isa: string;
  /** f32 lanes per FMA instruction, as executed (0: no FMA). */
  lanes: number;
  fmaUnits: number;
  clockGHz: number;
  clockSource: string;
  /** cores x fmaUnits x lanes x 2 x clockGHz; 0 without FMA. */
  gflopPerS: number;
  /** The same peak at a narrower vector width (llvmpipe's, from its description), or null. */
  atVectorBits: { bits: number; lanes: number; gflopPerS: number } | null;
  /** Which of the factors were assumed rather than read (each a short sentence). */
  assumptions: string[];
}

export interface CpuSources {
  /** /proc/cpuinfo's text ("" where missing). */
  cpuinfo: string;
  /** cpufreq's cpuinfo_max_freq in kHz, or null where missing. */
  maxFreqKHz: number | null;
  /** Logical CPUs when cpuinfo does not list them. */
  logicalCpus: number;
}

function field(block: string, name: string): string | undefined {
  const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(block);
  return m?.[1].trim();
}

/** The peak from the machine's descriptions; `vectorBits`: the JIT's width (llvmpipe), if known. */
export function cpuPeakFrom(src: CpuSources, vectorBits: number | null = null): CpuPeak {
  const blocks = src.cpuinfo.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  const first = blocks[0] ?? "";
  const model = field(first, "model name") ?? "unknown CPU";
  const flags = new Set((field(first, "flags") ?? "").split(/\s+/));
  const family = Number(field(first, "cpu family") ?? NaN);
  const modelNo = Number(field(first, "model") ?? NaN);
  const amd = (field(first, "vendor_id") ?? "") === "AuthenticAMD" || /\bAMD\b/.test(model);
  const assumptions: string[] = [];

  const logicalCpus = blocks.length || src.logicalCpus;
  const coreIds = new Set(
    blocks.map((b) => `${field(b, "physical id") ?? "?"}:${field(b, "core id") ?? "?"}`),
  );
  let cores = coreIds.size;
  if (blocks.length === 0 || [...coreIds].some((k) => k.includes("?"))) {
    cores = logicalCpus;
    assumptions.push(`cores: no core ids, so every logical CPU (${logicalCpus}) counts as a core`);
  }

  let isa: string, lanes: number;
  if (flags.has("avx512f")) [isa, lanes] = ["AVX-512", 16];
  else if (flags.has("avx2") && flags.has("fma")) [isa, lanes] = ["AVX2+FMA", 8];
  else if (flags.has("fma")) [isa, lanes] = ["FMA (128-bit)", 4];
  else [isa, lanes] = ["no FMA", 0];
  if (blocks.length === 0) assumptions.push("lanes: no /proc/cpuinfo flags, no FMA assumed");

  let fmaUnits = 2;
  if (/Xeon.*\b(Silver|Bronze)\b/i.test(model) && lanes === 16) {
    fmaUnits = 1;
    assumptions.push("FMA units: 1 (Xeon Silver/Bronze have one 512-bit FMA unit)");
  } else if (amd && family === 25 && lanes === 16) {
    lanes = 8;
    assumptions.push("lanes: 8 (Zen 4 runs a 512-bit FMA as two 256-bit halves)");
    assumptions.push("FMA units: 2 per core (not in any flag)");
  } else if (amd && family === 23 && modelNo < 0x30 && lanes >= 8) {
    lanes = 4;
    assumptions.push("lanes: 4 (Zen 1 / Zen+ have 128-bit FMA pipes)");
    assumptions.push("FMA units: 2 per core (not in any flag)");
  } else {
    assumptions.push(
      "FMA units: 2 per core (not in any flag; right for Intel Haswell+ and AMD Zen 2-5)",
    );
  }

  let clockGHz: number, clockSource: string;
  const mhz = Number(field(first, "cpu MHz") ?? NaN);
  const named = /@\s*([\d.]+)\s*GHz/i.exec(model);
  if (src.maxFreqKHz && src.maxFreqKHz > 0) {
    clockGHz = src.maxFreqKHz / 1e6;
    clockSource = "cpufreq cpuinfo_max_freq (boost included)";
    assumptions.push("clock: all cores sustain the highest clock under FMA load");
  } else if (Number.isFinite(mhz) && mhz > 0) {
    clockGHz = mhz / 1000;
    clockSource = '/proc/cpuinfo "cpu MHz" (no cpufreq; in a VM the clock the hypervisor reports)';
    assumptions.push(
      "clock: all cores sustain the reported clock under FMA load (boost not known)",
    );
  } else if (named) {
    clockGHz = Number(named[1]);
    clockSource = "the model name's nominal clock";
    assumptions.push("clock: the nominal clock from the model name");
  } else {
    clockGHz = 2.5;
    clockSource = "assumed";
    assumptions.push("clock: 2.5 GHz assumed (the machine reports none)");
  }

  const peak = (l: number) => cores * fmaUnits * l * 2 * clockGHz;
  const narrowLanes = vectorBits ? Math.min(lanes, vectorBits / 32) : null;
  return {
    model,
    cores,
    logicalCpus,
    isa,
    lanes,
    fmaUnits,
    clockGHz,
    clockSource,
    gflopPerS: peak(lanes),
    atVectorBits: narrowLanes !== null && narrowLanes < lanes
      ? { bits: vectorBits!, lanes: narrowLanes, gflopPerS: peak(narrowLanes) }
      : null,
    assumptions,
  };
}

/** Reads this machine's sources (empty where not Linux or not allowed). */
export function readCpuSources(): CpuSources {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  const khz = Number(read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").trim());
  return {
    cpuinfo: read("/proc/cpuinfo"),
    maxFreqKHz: Number.isFinite(khz) && khz > 0 ? khz : null,
    logicalCpus: navigator.hardwareConcurrency ?? 1,
  };
}

/** llvmpipe's vector width from its description ("llvmpipe (LLVM 15.0.6, 256 bits)"), or null. */
export function jitVectorBits(adapterDescription: string): number | null {
  const m = /llvmpipe\s*\([^)]*?(\d+)\s*bits\)/i.exec(adapterDescription);
  return m ? Number(m[1]) : null;
}

/** "2 cores x 2 FMA units x 16 lanes (AVX-512) x 2 x 2.60 GHz = 333 GFLOP/s". */
export function describeCpuPeak(p: CpuPeak): string[] {
  const f = (x: number) => x.toFixed(x >= 100 ? 0 : 1);
  const lines = [
    `CPU FMA peak: ${p.model}: ${p.cores} cores x ${p.fmaUnits} FMA units x ${p.lanes} lanes ` +
    `(${p.isa}) x 2 x ${p.clockGHz.toFixed(2)} GHz = ${f(p.gflopPerS)} GFLOP/s (f32)`,
    `  lanes from the /proc/cpuinfo flags; clock: ${p.clockSource}`,
  ];
  if (p.atVectorBits) {
    lines.push(
      `  at llvmpipe's ${p.atVectorBits.bits}-bit vectors (${p.atVectorBits.lanes} lanes): ` +
        `${f(p.atVectorBits.gflopPerS)} GFLOP/s, the most lavapipe's code can reach here`,
    );
  }
  for (const a of p.assumptions) lines.push(`  assumption: ${a}`);
  return lines;
}
