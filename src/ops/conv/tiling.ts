// Tile configurations of the tiled-convolution generator (src/ops/conv/gemm.ts), as data, and the
// hook through which the dispatch picks one per (view, shape class, batch bucket).
//
// The generator writes one register-tiled implicit GEMM per configuration for three views of
// the same convolution:
//   fwd        rows = N*Ho*Wo output pixels, columns = Cout, reduction = KH*KW*Cin
//   bwdData    rows = N*H*W input pixels (grouped by stride phase), columns = Cin,
//              reduction = the phase's taps x Cout
//   bwdFilter  rows = KH*KW*Cin filter rows, columns = Cout, reduction = N*Ho*Wo, split over
//              `splitK`-style slices so that every per-invocation loop stays < 65,535 iterations
//
// Two families:
//   - "register" configs (stageInWorkgroupMemory false): each invocation keeps its tile in
//     unrolled scalar/vec4 accumulators and loads its operands straight from storage. llvmpipe
//     likes these: every storage load is a per-lane loop there, so loads per FMA decide the
//     speed, WGSL arrays go to scratch memory (0.6x), and a workgroup barrier costs a thread
//     switch (staging the filter in workgroup memory measured 9.0 vs 13.1 GFLOP/s).
//   - "workgroup" configs (stageInWorkgroupMemory true): a workgroup of wgRows x wgCols
//     invocations computes a (wgRows*R) x (wgCols*C) block from x/w tiles staged in workgroup
//     memory, `kChunk` reduction steps per barrier; 4x4..8x8 accumulators per invocation keep a
//     discrete GPU under its ~255 registers per invocation with good occupancy.
// Every config is valid for every shape: vecWidth 4 is used where the channel counts allow
// (multiples of 4) and the generator falls back to scalar loads otherwise.
//
// The autotuner times candidateConfigs(view, kind) and keys its choices by shapeKey(view, g);
// defaultConfig is the built-in choice where nothing is tuned. Which config a dispatch runs is
// decided by the TilePlan its op call carries (tile_plan.ts).

import type { ConvGeometry } from "./geometry.ts";

export type ConvView = "fwd" | "bwdData" | "bwdFilter";
export const CONV_VIEWS: readonly ConvView[] = ["fwd", "bwdData", "bwdFilter"];

/** software: llvmpipe/lavapipe, SwiftShader, WARP, fallback adapters; discrete: real GPUs. */
export type AdapterKind = "software" | "discrete";

export interface TileConfig {
  /** Stable name, unique across views (`fwd.r16c16v4`); cache files and FMNIST_TILE_CONFIG use it. */
  id: string;
  view: ConvView;
  /** GEMM rows (output pixels; filter rows for bwdFilter) per invocation. */
  rowsPerInvocation: number;
  /** GEMM columns (output channels; input channels for bwdData) per invocation. */
  colsPerInvocation: number;
  /** Widest vector load: 4 where the channel counts are multiples of 4, else scalar. */
  vecWidth: 1 | 4;
  /** Invocations per workgroup (wgRows * wgCols when staged). */
  workgroupSize: number;
  /** Stage operand tiles in workgroup memory (one barrier per K chunk). */
  stageInWorkgroupMemory: boolean;
  /** Staged configs: invocations along rows x columns of the workgroup's block. */
  workgroupGrid?: [rows: number, cols: number];
  /** Staged configs: reduction steps per staged chunk (8..32). */
  kChunk?: number;
  /**
   * bwdFilter: reduction slices aimed at (the dispatch rounds to whole output rows and raises
   * the count until each slice's loop stays under the software loop cap).
   */
  splitK?: number;
  /**
   * Register configs: fwd/bwdData rows are consecutive pixels of one image row and each
   * reduction step loads the input window their taps share once; bwdFilter keeps the inputs of
   * one filter row's taps in registers along the output row (gemm_window_wgsl.ts). Where the
   * window does not apply (rowWindowApplies: 1x1 filters, rows under 7 pixels, backward views
   * at strides > 1) the same tile runs as pixel or filter rows.
   */
  rowWindow?: boolean;
  /**
   * Winograd F(2x2, 3x3) (winograd.ts) instead of the direct implicit GEMM: rows/cols shape
   * its per-plane GEMM's register tile. Where it does not apply (not 3x3 stride 1) the dispatch
   * uses the adapter kind's default.
   */
  winograd?: boolean;
  /**
   * fwd/bwdData register configs: read the filter through uniform buffers (var<uniform>,
   * copies bound in place of the tensor: src/tf/uniform_inputs.ts) instead of storage. On
   * lavapipe a uniform load is a branchless gather, a storage load a per-lane branch loop
   * (gemm_wgsl.ts's "CPU's rules"). A filter over one binding (64 KiB) is split into one binding
   * per filter row in a row window; where that does not fit either, or the filter is read as
   * scalars (gemm.ts's filterUniformParts), the same tile reads it from storage.
   */
  filterInUniform?: boolean;
  /**
   * Row-window configs: read the vec4 operands that are not the filter (fwd: x, bwdData: dz,
   * bwdFilter: dz or dy and z, and x) through textures (textureLoad from rgba32float copies:
   * src/tf/uniform_inputs.ts) instead of storage. Where
   * the CPU lacks AVX-512, Mesa 22.3's lavapipe makes a storage load 10x a texel fetch; elsewhere
   * the two cost about the same and the copy is extra (gemm_wgsl.ts's "CPU's rules").
   */
  inputInTexture?: boolean;
  /** The adapter kind it is meant for (both kinds can run every config). */
  kind: AdapterKind;
}

type Shape = Omit<TileConfig, "id" | "view" | "kind">;

function reg(rows: number, cols: number, vecWidth: 1 | 4, extra: Partial<Shape> = {}): Shape {
  return {
    rowsPerInvocation: rows,
    colsPerInvocation: cols,
    vecWidth,
    workgroupSize: 64,
    stageInWorkgroupMemory: false,
    ...extra,
  };
}

function staged(rows: number, cols: number, grid: [number, number], kChunk: number): Shape {
  return {
    rowsPerInvocation: rows,
    colsPerInvocation: cols,
    vecWidth: 1,
    workgroupSize: grid[0] * grid[1],
    stageInWorkgroupMemory: true,
    workgroupGrid: grid,
    kChunk,
  };
}

/** A Winograd config: its GEMM's register tile (rows x cols, vec4 columns). */
function wino(rows: number, cols: number, extra: Partial<Shape> = {}): Shape {
  return { ...reg(rows, cols, 4, extra), winograd: true };
}

function configId(view: ConvView, s: Shape): string {
  const base = `${view}${
    s.winograd ? ".wino2" : ""
  }.r${s.rowsPerInvocation}c${s.colsPerInvocation}v${s.vecWidth}`;
  const split = s.splitK ? `s${s.splitK}` : "";
  if (!s.stageInWorkgroupMemory) {
    return base + split + (s.rowWindow ? ".win" : "") + (s.filterInUniform ? ".ubo" : "") +
      (s.inputInTexture ? ".tex" : "");
  }
  const [gr, gc] = s.workgroupGrid!;
  return `${base}.wg${gr}x${gc}k${s.kChunk}${split}`;
}

function make(view: ConvView, kind: AdapterKind, shapes: Shape[]): TileConfig[] {
  return shapes.map((s) => ({ id: configId(view, s), view, kind, ...s }));
}

// Software candidates: tiles around the llvmpipe optima. bench/probes/conv_gemm_probe.ts, batch 128,
// GPU timestamps, machine shared with other builds (load average 10-13 on 2 cores: ratios within
// one run only), 28x28 32->32 and 14x14 64->64, GFLOP/s:
//   fwd       r16c32 8.6 / 9.6, r16c16 7.9 / 8.2, r8c8 5.0 / 5.7, scalar r4c4 1.6 / 1.6
//   bwdData   r16c16 7.5 / 8.6, r8c16 5.7 / 6.2, r8c8 5.3 / 6.2, r4c8 3.8 / 4.0
//   bwdFilter r16c16 s32 7.1 / 6.6, r8c32 s32 6.3 / 5.7, r8c16 s32 5.4 / 5.4, r8c8 s64 4.6 / 3.6
// and in a later (less loaded) run at 28x28 32->32: bwdData r16c32 9.8, r16c16 7.3, r8c16 7.2,
// r8c8 6.9; bwdFilter r16c32 s32 10.8, r16c16 s32 9.6, r8c32 s32 8.9, r8c16 s32 7.5. So the
// largest tiles (128 vec4 accumulators) win although llvmpipe spills them: loads per FMA matter
// more, and with them the backward runs at the forward's rate per FLOP. The model-input layer's forward (Cin 1: scalar x, K = 9) gains most from the
// widest column tile (r16c32 46 vs r16c16 66 ms in an earlier run).
// Winograd candidates (`.wino2.`, both kinds, appended: the direct default stays first): the
// register tiles of the per-plane GEMMs, a large one (r16c32, 128 vec4 accumulators, the direct
// optimum's shape) and a small one (r8c16; the filter gradient's GEMM ran faster with it at 28x28
// 32->32, 154 vs 196 ms); on discrete GPUs r4c16 (16 accumulators). bench/probes/winograd_probe.ts,
// batch 128, llvmpipe: Winograd beats the best direct config on every hidden layer (1.05-2.3x per
// view) and loses on the model-input layer (Cin 1 padded to 4: 0.16-0.26x), so the tuner decides.
// Row windows (rowWindow; gemm_window_wgsl.ts), the software defaults since the CPU's rules in
// gemm_wgsl.ts's header were measured: process CPU ms per view, batch 32, Zen 5 EPYC, Mesa 22.3.6
// lavapipe, 2 shared cores (load average 7-15), median of 3, one run (BENCHMARKS.md has Mesa 25):
//   28x28 32->32  fwd r16c32 43.5, win r28c16 29.2 (1.49x), win r14c32 36.7, win r32c16 35.2
//                 bwdData r16c32 45.3, win r28c16 28.3 (1.60x), win r14c32 35.9
//                 bwdFilter r16c32 s32 33.9, r32c16 s32 33.7, win r8c16 s32 14.8 (2.29x),
//                 win r4c16 s64 17.0, win r4c32 s32 18.3, win r8c32 s32 27.6
//   14x14 64->64  fwd r16c32 38.8, win r14c32 31.0 (1.25x), win r28c16 47.7 (half its rows idle)
//                 bwdData r16c32 37.7, win r14c32 32.9 (1.15x), win r28c16 51.8
//                 bwdFilter r16c32 s32 36.5, win r8c16 s32 17.8 (2.05x), win r4c16 s64 21.1
// On Mesa 25.0.7 the order of the two tap windows flips (bwdFilter win r4c16 s64 19.8 / 24.4 ms
// against win r8c16 s32 25.6 / 31.0 at the two shapes): both stay for the tuner. And
// the row window's tile follows the row width (windowTile: r28c16 is 28 x 16 at width 28,
// 14 x 32 at 14, 7 x 64 at 7). Bigger pixel-row tiles (r32c16, r32c32: 0.97-1.04x of r16c32)
// and lane rows (a SIMD group's filter loads made uniform: 0.6-1.03x; they cost the same per-lane
// loads here) did not pay and are not in the list.
// bwdFilter's window r16c16 s16 is for AVX2 code generation on Mesa 22.3, where every load costs
// 4x (gemm_wgsl.ts): process CPU ms, batch 32, Zen 5 EPYC with AVX-512 masked
// (GALLIUM_OVERRIDE_CPU_CAPS=avx), 28x28 32->32 / 14x14 64->64: 54.1 / 58.2 against the default
// window r8c16 s32's 64.8 / 71.9 (natively 0.95-1.02x, on Mesa 25.0.7 0.58-0.71x), so the tuner
// decides. The forward window r28c32 (1.07-1.15x there, 0.68-0.75x on 25.0 with AVX2) is not in
// the list: on Mesa 25.0.7 a probe that compiles and runs it once took 37 s (r28c16: 11 s;
// bwdFilter window r16c16 s16: 9.5 s, r8c16 s32: 3.0 s), ~26 s more per pipeline for every
// tuning and test that compiles it. Smaller tiles shaped for AVX2's 16 registers (r4c8, r4c16, r8c8, r8c16,
// win r14c8, r7c16, bwdFilter win r4c8, r2c16, r2c8) slowed down more under AVX2 on 22.3 (2.6-7.7x
// on the hidden layers, against 2.5-3.7x for the defaults) and are not in the list either
// (BENCHMARKS.md, "AVX2 code generation (emulated)").
const win = (rows: number, cols: number, extra: Partial<Shape> = {}) =>
  reg(rows, cols, 4, { rowWindow: true, ...extra });
// fwd and bwdData (both pixel-row GEMMs) share the row window with its filter in uniform
// buffers and its input in a texture (`.ubo.tex`, the default), the two largest plain tiles
// and the Winograd pair; `smaller` are the view's own smaller plain tiles. `.ubo` against `.win`,
// conv_gemm_probe.ts --cpu, batch 128, process CPU time, Mesa 22.3 / 25.0 (BENCHMARKS.md):
//   28x28 1->32 fwd 1.36-1.43x / 1.47-1.52x; 28x28 32->32 fwd 1.21-1.31x / 1.31-1.44x, bwdData
//   1.14-1.17x / 1.37-1.40x; 14x14 32->64 fwd 1.34-1.39x / 1.44-1.46x, bwdData 1.38-1.43x /
//   1.45-1.55x; 14x14 64->64 fwd 1.43-1.45x / 1.47-1.57x, bwdData 1.36-1.38x / 1.56-1.65x;
//   the enhanced training step's CPU time 1.22-1.23x / 1.31-1.32x lower.
// `.tex` (inputInTexture: the operands not in uniform buffers read by textureLoad from copies),
// conv_gemm_probe.ts --cpu, batch 128, process CPU ms against the same config without, 28x28
// 32->32 / 14x14 64->64 (BENCHMARKS.md, "Texture loads"): with AVX2 code on Mesa 22.3 fwd
// 1.97x / 1.56x, bwdData 1.92x / 1.58x, bwdFilter window r8c16 s32 4.5x / 4.1x; natively on 22.3
// and 25.0 1.02-1.15x, the copy included. So the `.tex` twins are the defaults (the plain r16c32
// too, which runs the dense layers), and the window configs they dominate (`.win.ubo`, `.win`,
// bwdFilter `.win` r8c16 s32) leave the candidates for SOFTWARE_REFERENCE: still configs (tests
// compare against them, FMNIST_TILE_CONFIG can pin them), no longer timed by the tuner, whose
// every candidate costs a pipeline compile (5-15 s cold on Mesa 25). The tap window r4c16 s64 lost
// with textures on 25.0 (69.5 vs 63.9 ms) and has no twin.
const softwarePixelRows = (...smaller: Shape[]) => [
  win(28, 16, { filterInUniform: true, inputInTexture: true }),
  reg(16, 32, 4, { inputInTexture: true }),
  reg(16, 32, 4),
  reg(16, 16, 4),
  ...smaller,
  wino(16, 32),
  wino(8, 16),
];
const SOFTWARE: Record<ConvView, TileConfig[]> = {
  fwd: make("fwd", "software", softwarePixelRows(reg(8, 8, 4), reg(4, 4, 1))),
  bwdData: make("bwdData", "software", softwarePixelRows(reg(8, 16, 4), reg(8, 8, 4))),
  bwdFilter: make("bwdFilter", "software", [
    win(8, 16, { splitK: 32, inputInTexture: true }),
    win(4, 16, { splitK: 64 }),
    win(16, 16, { splitK: 16 }),
    reg(16, 32, 4, { splitK: 32, inputInTexture: true }),
    reg(16, 32, 4, { splitK: 32 }),
    reg(8, 32, 4, { splitK: 32 }),
    reg(8, 16, 4, { splitK: 32 }),
    wino(16, 32, { splitK: 32 }),
    wino(8, 16, { splitK: 32 }),
  ]),
};

/** Software configs that are not tuner candidates (see above): the dominated storage twins. */
const SOFTWARE_REFERENCE: Record<ConvView, TileConfig[]> = {
  fwd: make("fwd", "software", [win(28, 16, { filterInUniform: true }), win(28, 16)]),
  bwdData: make("bwdData", "software", [win(28, 16, { filterInUniform: true }), win(28, 16)]),
  bwdFilter: make("bwdFilter", "software", [win(8, 16, { splitK: 32 })]),
};

// Discrete candidates: workgroup-memory tiles (256 invocations -> 64x64 with 4x4 each; 64 -> 32x32
// with 4x4; 256 -> 128x64 with 8x4), K chunks 8-32, plus one register config as a fallback.
// fwd and bwdData share three staged tiles and the fallbacks; `more` are the view's own tiles.
const discretePixelRows = (...more: Shape[]) => [
  staged(4, 4, [16, 16], 16),
  staged(4, 4, [8, 8], 16),
  staged(8, 4, [16, 16], 8),
  ...more,
  reg(4, 4, 4),
  wino(4, 16),
];
const DISCRETE: Record<ConvView, TileConfig[]> = {
  fwd: make("fwd", "discrete", discretePixelRows(staged(4, 4, [16, 16], 32))),
  bwdData: make("bwdData", "discrete", discretePixelRows()),
  bwdFilter: make("bwdFilter", "discrete", [
    { ...staged(4, 4, [16, 16], 16), splitK: 64 },
    { ...staged(4, 4, [8, 8], 32), splitK: 128 },
    { ...staged(4, 4, [16, 16], 16), splitK: 256 },
    reg(4, 4, 4, { splitK: 256 }),
    wino(4, 16, { splitK: 256 }),
  ]),
};

/** The configurations worth timing for `view` on an adapter of `kind` (default first). */
export function candidateConfigs(view: ConvView, kind: AdapterKind): TileConfig[] {
  return (kind === "software" ? SOFTWARE : DISCRETE)[view];
}

/**
 * The built-in choice when tuning is off or has no entry: the first candidate of the kind, or
 * at a shape `g` where that is a row window that does not apply, the first plain one.
 */
export function defaultConfig(view: ConvView, kind: AdapterKind, g?: ConvGeometry): TileConfig {
  const list = candidateConfigs(view, kind);
  // Where a row window has nothing to share (1x1 filters: the dense layers run here as 1x1
  // convolutions of 1x1 images) or its row is too short, the largest plain tile is the default.
  if (g && list[0].rowWindow && !rowWindowApplies(view, g)) {
    return list.find((c) => !c.rowWindow && !c.winograd) ?? list[0];
  }
  return list[0];
}

/**
 * Whether a row-window config runs as a window at `g` (gemm.ts's gemmWidths asks the same):
 * taps to share (KW > 1), output rows of 7 pixels or more, and bwdData and bwdFilter at unit
 * column stride (bwdData at unit row stride too). Elsewhere its tile runs as plain rows.
 * Measured (BENCHMARKS.md run I): with windows on the dense layers too (1x1 images: a tile of
 * one row x 128 columns) `baseline`'s step took 372 ms of GPU time at batch 128 against 193 ms
 * with plain tiles there (deno task profile, Mesa 22.3).
 */
export function rowWindowApplies(view: ConvView, g: ConvGeometry): boolean {
  if (g.kW < 2) return false;
  if (view === "fwd") return g.outW >= 7;
  if (view === "bwdData") return g.strideH === 1 && g.strideW === 1 && g.inW >= 7;
  return g.strideW === 1 && g.outW >= 7;
}

/** Every configuration of a view, both kinds (tests run each against the CPU reference). */
export function allConfigs(view: ConvView): TileConfig[] {
  return [...SOFTWARE[view], ...SOFTWARE_REFERENCE[view], ...DISCRETE[view]];
}

/** The configuration named `id`, or undefined. */
export function configById(id: string): TileConfig | undefined {
  for (const view of CONV_VIEWS) {
    const c = allConfigs(view).find((t) => t.id === id);
    if (c) return c;
  }
  return undefined;
}

/** Adapter kind from its info strings (the same rule as src/tf/setup.ts's isSoftware). */
export function adapterKindOf(
  info: { vendor?: string; architecture?: string; description?: string; isFallback?: boolean },
): AdapterKind {
  if (info.isFallback) return "software";
  const text = `${info.vendor ?? ""} ${info.architecture ?? ""} ${info.description ?? ""}`;
  return /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic/i.test(text)
    ? "software"
    : "discrete";
}

/** Batch sizes grouped by powers of two (1, 2, 4, ..., 256, then 512+): one tuning per bucket. */
export function batchBucket(batch: number): number {
  if (batch >= 512) return 512;
  let b = 1;
  while (b < batch) b *= 2;
  return b;
}

/**
 * Cache key of a layer: view, kernel, strides, padding, channels, input size and batch bucket,
 * e.g. `fwd:k3x3:s1x1:p1x1:c32>32:28x28:b128`. Two layers with one key get one tuning.
 */
export function shapeKey(view: ConvView, g: ConvGeometry): string {
  return `${view}:k${g.kH}x${g.kW}:s${g.strideH}x${g.strideW}:p${g.padTop}x${g.padLeft}:` +
    `c${g.inC}>${g.outC}:${g.inH}x${g.inW}:b${batchBucket(g.batch)}`;
}
