// WGSL generator of the tiled convolution: one register-tiled implicit GEMM, three views
// (src/ops/conv/tiling.ts describes the views and the configuration space), two families:
//
// Register tiles (stageInWorkgroupMemory false), the llvmpipe shape. Each invocation owns
// R rows x C columns in unrolled accumulators (`a{r}_{c}`, vec4 over columns where Cout/Cin allow)
// and walks the reduction itself, loading its operands straight from storage:
//   fwd/bwdData ("pixel rows"): per tap (kh, kw), per row, the address and a 0/1 validity factor
//     are computed once; the channel loop then loads R A-vectors and VA x C/VB B-vectors for
//     R x C x VA FMAs. bwdData walks only the taps of its stride phase: invocations are grouped
//     by (ih + padTop) mod sH and (iw + padLeft) mod sW (grid z = phase), so kh runs ph, ph + sH..
//     and no tap is masked for the stride (at stride 2 a 3x3 filter has 4, 2, 2 or 1 taps per
//     phase instead of 9 masked ones). bwdData reads the filter as it is stored, VA-vectors along
//     Cout (its reduction), and forms each VB accumulator from VB dot products: the same vec4
//     loads and FMAs as reading a transposed copy (KH, KW, Cout, Cin) with VB-vectors along Cin,
//     without the ConvFilterTranspose dispatch (one per layer with dx: 3 per enhanced step). Only
//     VA = 1, VB = 4 (Cout % 4 != 0, Cin % 4 == 0) keeps the copy, where reading w would cost 4
//     scalar loads per vec4 (GemmWidths.directFilter). Measured against the transposed reads
//     (default config, llvmpipe, batch 128, process CPU time per bwdData view (median of
//     9, 3 alternating rounds, loaded 2-core machine): 28x28 32->32 131.6 -> 128.7 ms, 14x14
//     32->64 59.8 -> 59.2, 14x14 64->64 115.1 -> 113.0 (same within noise)). A first version with
//     one filter offset per (column, component) instead of per column ran ~5% slower at 28x28
//     (more live registers).
//   bwdFilter ("filter rows"): rows = (tap, Cin), columns = Cout, reduction = output pixels of one
//     slice (rowsPerSplit output rows of N*Ho); per pixel it loads R/VA x vectors and C/VB dz
//     vectors for R x C FMAs. Slices are extra invocations (id = tile + tiles * slice), so even
//     the 9 x 32 filter of the first layer fills the device; partials are summed afterwards.
// Why unrolled scalars: WGSL arrays of accumulators went to scratch memory on llvmpipe and ran at
// 0.6x (the kernel headers of the hand-written versions measured 2.9 vs 4.9 GFLOP/s).
//   Row windows (TileConfig.rowWindow, gemm_window_wgsl.ts): fwd and stride-1 bwdData tiles of R
//     consecutive pixels of one image row that load the (R - 1) * SW + KW input pixels their
//     taps share once per reduction step; bwdFilter tiles of one filter row's KW taps that keep
//     the input vectors those taps read in registers along the output row. Fewer loaded floats
//     per multiply-add is what pays on a CPU (next paragraph). Against r16c32, batch 32, CPU
//     time, Mesa 22.3 / 25.0: 28x28 32->32 fwd 1.49x / 1.58x, bwdData 1.60x / 1.58x, bwdFilter
//     2.29x / 1.76x; 14x14 64->64 1.25x / 1.31x, 1.15x / 1.26x, 2.05x / 1.63x (tiling.ts). Where
//     no taps are shared (1x1 filters, i.e. the dense layers, rows under 7 pixels) the same
//     config runs as plain rows and the default is the plain r16c32 (tiling.ts's
//     rowWindowApplies).
//
// The CPU's rules (llvmpipe/lavapipe, Mesa 22.3.6 and 25.0.7 with LLVM 15, read from the machine
// code: GALLIVM_DEBUG=asm on 22.3, gdb on the JIT code of 25.0, the dumped IR recompiled with
// llc -mcpu=znver2 for a 16-register AVX2 core; costs from bench/probes/lavapipe_rules_probe.ts on a
// Zen 5 EPYC, process CPU ns per lane-operation):
// - A workgroup is a loop over SIMD groups of 8 invocations, one per 32-bit lane of a 256-bit
//   register ("256 bits" in the adapter name; 8 with AVX-512 too, whose gain is 32 vector
//   registers instead of 16; LP_NATIVE_VECTOR_WIDTH=512 changed no per-lane cost). Values are
//   SoA: a vec4 is 4 registers. `a += s * b` is vmulps + vaddps over 8 lanes (WGSL does not
//   contract; fma() is lowered to the same pair), plus a vblendvps with the execution mask where
//   `a` is a loop variable under divergent control flow.
// - Every storage-buffer load is a per-lane scalar sequence: for each of the 8 lanes test its
//   mask bit, extract its address, re-read the buffer's base and size from the descriptor,
//   compare against the size (robust access), branch, load, insert into the vector: about 10
//   instructions and 2 branches per lane and component, and with 16 registers the partly built
//   vectors spill. No gathers, no vector loads, and no broadcast of an address that is the same
//   in every lane (workgroup id + loop counter): these Mesa versions treat only constant and
//   push-constant addresses as uniform. Measured, 22.3 / 25.0: multiply-add 0.11 / 0.17 ns with
//   8 accumulators, 0.037 with 128; scalar load 0.53 / 0.65 ns whatever the address pattern
//   (per-lane, workgroup-uniform or loop-uniform alike); vec4 load 0.35 / 0.37 ns per float;
//   workgroup memory 0.43 / 0.52 ns (no bounds check, but barriers are coroutine switches).
// - So a loaded float costs 10-17 multiply-adds, while spilled accumulators cost little (128 per
//   lane run faster per op than 8: the loop overhead dominates, spills stay in L1). A tile's
//   speed is its loaded floats per multiply-add, which is why the tuner picked the largest tile
//   and why the row windows win: 3x3 filter, floats loaded per multiply-add, pixel rows
//   r16c32 0.094, window r28c16 0.058 (same 448-512 accumulators).
// - Uniform-buffer loads (var<uniform>) take another path: a branchless emulated gather (the
//   offsets clamped to the binding's size with one vector compare + select, then per lane an
//   extract, a scalar load and an insert; Mesa 25.0's IR, GALLIVM_DEBUG=ir), one per component
//   (a vec4 is 4 of them), and no broadcast either, even for an offset made of loop counters and
//   constants only. Measured per float, 22.3 / 25.0 (Deno 2.9.6, 64 KiB working set): 0.35 /
//   0.37 ns for every address pattern and width, against storage 0.93-1.05 / 0.65 (scalar) and
//   0.55 / 0.37 (vec4). In a tile's inner loop the branchless loads schedule better still:
//   the probe's miniature forward steps with the filter vec4s from a uniform buffer instead of
//   storage ran 1.57x / 1.58x faster per multiply-add on 25.0 for the row window 28x16 (3 taps),
//   1.2x for r16c32, 1.3x for r4c8; 1.1-1.3x, 1.05-1.2x, 1.2x on 22.3. Hence
//   TileConfig.filterInUniform (`.ubo`, in the software defaults; src/tf/uniform_inputs.ts): per
//   view at the enhanced model's layers 1.14-1.65x against the same window reading storage, its
//   training step 1.22x / 1.31x less CPU time (BENCHMARKS.md); with AVX2 code generation a
//   uniform load keeps its cost while 22.3's storage loads cost 4x (next paragraph): per view
//   1.8-3.2x on 22.3, 1.5-1.8x on 25.0. A uniform binding holds
//   64 KiB (Deno's limit on lavapipe) with a 16-byte array stride: array<vec4<f32>, N>; a larger
//   filter takes one binding per filter row (the kh loop unrolled).
// - Without AVX-512 (AVX2 code generation, emulated on the Zen 5 by GALLIUM_OVERRIDE_CPU_CAPS=avx)
//   Mesa 22.3's per-lane load, a loop over the 8 lanes, inserts each lane's value at a variable
//   index, which LLVM 15 lowers through the stack (store 4 bytes into the spilled vector, reload
//   32: a failed store-to-load forward per lane; with AVX-512 a broadcast, compare-to-mask and
//   masked move): every load costs 4.2-6.4x (scalar 4.3 vs 1.0 ns, vec4 6.4x, workgroup memory
//   5.6x), hidden-layer views run 2.5-3.7x slower with the defaults and 5-7.7x with small tiles. The
//   rule stays (fewest loads per multiply-add), only stronger; Mesa 25.0.7 unrolls the lane loop
//   (vpinsrd/vpblendd) and AVX2 costs it 0.75-1.4x per view (BENCHMARKS.md).
// - Texel fetches (textureLoad from an rgba32float texture) take a third path, the sampler's
//   gather: per lane an offset from the coordinates and the texture's row pitch, one 16-byte
//   load, then a 4x8 transpose by shuffles (Mesa 25.0's IR, GALLIVM_DEBUG=ir): no bounds-check
//   branch, no variable-index insert, one load per texel instead of per float. Per float
//   (lavapipe_rules_probe.ts --only vec4, idle Zen 5, native / AVX2 code): Mesa 22.3 0.40 / 0.36
//   ns against storage vec4 0.59 / 3.67; Mesa 25.0 0.39 / 0.38 against 0.38 / 0.38; uniform 0.36-0.40
//   everywhere. A texture has no 64 KiB limit, so it carries what a uniform buffer cannot: the
//   activations. Hence TileConfig.inputInTexture (`.tex`, the software default of the row and
//   tap windows): fwd reads x, bwdData dz, bwdFilter dz (or dy and z) and x from textures that
//   src/tf/uniform_inputs.ts fills by copyBufferToTexture before the dispatch. Per view
//   (conv_gemm_probe.ts --cpu, batch 128, process CPU ms, median of 3, 28x28 32->32 / 14x14
//   64->64): AVX2 code on 22.3 fwd 1.97x / 1.56x, bwdData 1.92x / 1.58x, bwdFilter (r8c16 s32)
//   4.5x / 4.1x; natively 1.04-1.15x on 22.3 and 25.0 (the copy included), bwdFilter 1.02-1.18x.
// - Mapping lanes so that a SIMD group's loads coincide buys nothing here: tried as "lane rows"
//   (column tile per workgroup, rows per lane: the filter loads of fwd/bwdData and the dz loads
//   of bwdFilter the same in every lane), 0.6-1.03x of the pixel-row tiles
//   at batch 32 (BENCHMARKS.md), because a uniform address costs the same per-lane loads and
//   each lane still loads its own inputs. It is the shape for a compiler that broadcasts uniform
//   loads (later upstream llvmpipe code decides uniformity by divergence analysis; not
//   measured here) or a GPU's scalar unit.
//
// Workgroup tiles (stageInWorkgroupMemory true), the discrete-GPU shape: a workgroup of WR x WC
// invocations computes a BM x BN block (BM = WR*R, BN = WC*C) from A (BM x KC) and B (KC x BN)
// tiles staged in workgroup memory, KC reduction steps per barrier pair; each invocation keeps
// R x C scalar accumulators, its rows and columns strided by WR / WC (coalesced stores, no bank
// conflicts on the shared reads). Operands are read through per-view `loadA(m, k)` /
// `loadB(k, n)` gathers (flat k decomposed into tap and channel), the only part that changes per
// view, as in tfjs-webgpu's conv2d_mm. Loop bounds depend on uniforms only (barriers must sit in
// uniform control flow: no early return, bwdData's phase tap count padded to the largest phase).
//
// Every shape travels as a uniform (geometry fields below), every binding is a flat 1-D view, so
// one pipeline serves every batch size; the shader key holds the config id, vector widths,
// bwdData's strides and the epilogue.
//
// Measured (llvmpipe, batch 128, enhanced-CNN layers, machine shared with other builds: load
// average 5-13 on 2 cores, so ratios within one run only). Per view with the software defaults
// (bench/probes/conv_gemm_probe.ts, GPU timestamps, 14x14 64->64, one run): forward 16.4 GFLOP/s,
// backward-data 10.3, backward-filter 9.2; at 28x28 32->32 (another run) 8.6 / 9.8 / 10.8.
// Per-config figures in conv/tiling.ts. The staged configs run at 0.5-1.0 GFLOP/s there (a
// barrier is a thread switch on llvmpipe, workgroup memory a plain array): they are for discrete
// GPUs and only checked for correctness on this machine. Against the hand-written kernels this
// generator replaced (same fwd+bwd script, back to back, four rounds; BENCHMARKS.md, history,
// run E): model-input layer 2.0-6.3x faster (median 3.5x; no dx any more), hidden
// layers 1.2-5.1x (medians 2.2x, 1.6x, 2.6x).

import type { ConvView, TileConfig } from "./tiling.ts";
import { windowFilterRegister, windowRowsRegister } from "./gemm_window_wgsl.ts";
import {
  clampedColumns,
  columnGroups,
  COMPONENTS,
  flatId,
  indent,
  range,
  SIZE_FIELDS,
  vec4Load,
} from "./codegen.ts";
import { FILTER_GRAD_SIZES, partialStore, sliceTileLines } from "./filter_grad_wgsl.ts";

/** What the kernel does with each finished accumulator (`store(i, c, v)`, i and c in VB units). */
export type ConvEpilogue = "store" | "scaleShiftRelu" | "biasRelu" | "bias";

/** Vector widths actually used: VA along the reduction operand's channels, VB along columns. */
export interface GemmWidths {
  va: 1 | 4;
  vb: 1 | 4;
  /**
   * bwdData register kernels: the strides as compile-time constants (part of the shader key).
   * Their tap loops divide by the stride per row and tap; by a constant 1 or 2 that folds away
   * or becomes a shift, by a uniform it is a scalarised per-lane division on llvmpipe.
   */
  strides?: [number, number];
  /**
   * bwdData register kernels: read the filter w (KH, KW, Cin, Cout) as it is, VA-vectors along
   * Cout (the reduction), instead of the transposed copy wt (KH, KW, Cout, Cin) with VB-vectors
   * along Cin that ConvFilterTranspose writes (one dispatch less). Same loads per FMA unless
   * VA = 1 and VB = 4 (4 scalar loads per vec4 of wt), where the transpose stays.
   */
  directFilter?: boolean;
  /**
   * fwd/bwdData: the filter binding is read through uniform buffers (TileConfig.filterInUniform,
   * where gemm.ts's filterUniformParts allows; src/tf/uniform_inputs.ts rewrites the binding):
   * 1 = the whole filter in one binding (the WGSL body is unchanged); KH (row windows only) = one
   * binding per filter row kh, the kh loop unrolled with KH a constant.
   */
  uniformFilterParts?: number;
  /**
   * Row-window kernels: the vec4 inputs read from textures (`NAME_tex`) instead of storage
   * (TileConfig.inputInTexture, where gemm.ts's textureInputs allows; src/tf/uniform_inputs.ts
   * rewrites the bindings; codegen.ts's vec4Load): fwd x, bwdData dz, bwdFilter dz (or dy, z)
   * and x.
   */
  textureInputs?: readonly string[];
  /**
   * Row-window kernels (TileConfig.rowWindow, gemm_window_wgsl.ts): the filter width and the
   * column stride as compile-time constants (part of the shader key). Absent where the config
   * falls back to pixel rows (bwdData at a stride other than 1).
   */
  window?: {
    kw: number;
    sw: number;
    /** fwd/bwdData: pixels per row tile and output channels per invocation at this shape. */
    rows?: number;
    cols?: number;
  };
}

/** Uniform fields every generated kernel reads (order = uniform struct order). */
export const GEOMETRY_FIELDS = [
  ...SIZE_FIELDS,
  "kH",
  "kW",
  "strideH",
  "strideW",
  "padTop",
  "padLeft",
  // bwdFilter: output rows (of N*Ho) per slice and the slice count; 0 elsewhere.
  "rowsPerSplit",
  "numSplits",
] as const;

/** Binding names (after `result`) per view and epilogue (fusedDz: bwdFilter's bnReluDz prologue). */
export function bindingNames(
  view: ConvView,
  epilogue: ConvEpilogue,
  fusedDz = false,
  directFilter = false,
): string[] {
  if (fusedDz) return ["dy", "z", "x", "terms"];
  const filter = directFilter ? "w" : "wt";
  const base = view === "fwd" ? ["x", "w"] : view === "bwdData" ? ["dz", filter] : ["dz", "x"];
  if (epilogue === "scaleShiftRelu") return [...base, "scale", "shift"];
  if (epilogue === "biasRelu" || epilogue === "bias") return [...base, "bias"];
  return base;
}

// ---- shared snippets ----------------------------------------------------------------------------

function vecType(width: number): string {
  return width === 4 ? "vec4<f32>" : "f32";
}

/** The epilogues: `store(i, c, v)` writes output element i (VB units) of column group c. */
const EPILOGUES: Record<ConvEpilogue, string> = {
  store: "fn store(i : i32, c : i32, v : VB) {\n  result[i] = v;\n}\n",
  scaleShiftRelu: "// Inference: batch norm folded into scale/shift on the host, then ReLU.\n" +
    "fn store(i : i32, c : i32, v : VB) {\n  result[i] = max(v * scale[c] + shift[c], VB(0.0));\n}\n",
  biasRelu: "fn store(i : i32, c : i32, v : VB) {\n  result[i] = max(v + bias[c], VB(0.0));\n}\n",
  // Linear layers (the dense logits, src/ops/dense_bias_act/dense_bias_act.ts).
  bias: "fn store(i : i32, c : i32, v : VB) {\n  result[i] = v + bias[c];\n}\n",
};

/** `alias VB` and the epilogue's `store(i, c, v)`, for kernels outside the generator (naive). */
export function epilogueSnippet(epilogue: ConvEpilogue, vb: 1 | 4): string {
  return `alias VB = ${vecType(vb)};\n` + EPILOGUES[epilogue];
}

/** bwdData: stride phase of this workgroup (grid z) and its pixel lattice. */
const PHASE_SETUP = `
  let sH = SH;
  let sW = SW;
  let ph = i32(workgroupId.z) / sW;
  let pw = i32(workgroupId.z) - ph * sW;
  // First ih with (ih + padTop) % sH == ph, and how many such rows (likewise for columns).
  let pih0 = ((ph - uniforms.padTop) % sH + sH) % sH;
  let piw0 = ((pw - uniforms.padLeft) % sW + sW) % sW;
  let hq = max(0, (uniforms.inH - pih0 + sH - 1) / sH);
  let wq = max(0, (uniforms.inW - piw0 + sW - 1) / sW);
`;

// ---- register tiles: fwd and bwdData ------------------------------------------------------------

function pixelRowsRegister(view: "fwd" | "bwdData", cfg: TileConfig, w: GemmWidths): string {
  const R = cfg.rowsPerInvocation;
  const CG = columnGroups(cfg, w);
  const fwd = view === "fwd";
  const A = fwd ? "x" : "dz";
  const direct = !fwd && w.directFilter === true;
  const B = fwd || direct ? "w" : "wt";
  const redC = fwd ? "uniforms.inC" : "uniforms.outC";
  const colC = fwd ? "uniforms.outC" : "uniforms.inC";
  const rows = range(R);
  const cols = range(CG);
  const js = range(w.va);

  const rowSetup = fwd
    ? rows.flatMap((r) => [
      `let mr${r} = min(m0 + ${r}, rows - 1);`,
      `let n${r} = mr${r} / (uniforms.outH * uniforms.outW);`,
      `let p${r} = mr${r} - n${r} * uniforms.outH * uniforms.outW;`,
      `let oh${r} = p${r} / uniforms.outW;`,
      `let ih${r} = oh${r} * uniforms.strideH - uniforms.padTop;`,
      `let iw${r} = (p${r} - oh${r} * uniforms.outW) * uniforms.strideW - uniforms.padLeft;`,
      `let nb${r} = n${r} * uniforms.inH;`,
      `let ob${r} = (m0 + ${r}) * colG;`,
    ])
    : rows.flatMap((r) => [
      `let q${r} = min(m0 + ${r}, rows - 1);`,
      `let n${r} = q${r} / (hq * wq);`,
      `let p${r} = q${r} - n${r} * hq * wq;`,
      `let i${r} = p${r} / wq;`,
      `let ih${r} = pih0 + i${r} * sH;`,
      `let iw${r} = piw0 + (p${r} - i${r} * wq) * sW;`,
      `let th${r} = ih${r} + uniforms.padTop;`,
      `let tw${r} = iw${r} + uniforms.padLeft;`,
      `let nb${r} = n${r} * uniforms.outH;`,
      `let ob${r} = ((n${r} * uniforms.inH + ih${r}) * uniforms.inW + iw${r}) * colG;`,
    ]);
  // Per kh: the row's source row and whether it exists; per kw: address and 0/1 factor.
  const hStep = fwd
    ? rows.flatMap((r) => [
      `let hh${r} = ih${r} + kh;`,
      `let hv${r} = hh${r} >= 0 && hh${r} < uniforms.inH;`,
      `let hb${r} = (nb${r} + hh${r}) * uniforms.inW;`,
    ])
    : rows.flatMap((r) => [
      `let hh${r} = (th${r} - kh) / sH; // exact: kh is in this row's phase`,
      `let hv${r} = th${r} >= kh && hh${r} < uniforms.outH;`,
      `let hb${r} = (nb${r} + hh${r}) * uniforms.outW;`,
    ]);
  const wStep = fwd
    ? rows.flatMap((r) => [
      `let ww${r} = iw${r} + kw;`,
      `let v${r} = hv${r} && ww${r} >= 0 && ww${r} < uniforms.inW;`,
      `let o${r} = select(0, (hb${r} + ww${r}) * redG, v${r});`,
      `let f${r} = select(0.0, 1.0, v${r});`,
    ])
    : rows.flatMap((r) => [
      `let ww${r} = (tw${r} - kw) / sW;`,
      `let v${r} = hv${r} && tw${r} >= kw && ww${r} < uniforms.outW;`,
      `let o${r} = select(0, (hb${r} + ww${r}) * redG, v${r});`,
      `let f${r} = select(0.0, 1.0, v${r});`,
    ]);
  // Direct filter (bwdData): u{i}_{c} = w[tap, ci = cb{c} * VB_W + i, co = k * VA ..] as a
  // VA-vector along co; accumulator component i gains dot(s, u{i}_{c}). One offset per column
  // (wo{c}), not per (column, i): fewer live registers.
  const is = range(w.vb);
  const bLoads = direct
    ? cols.flatMap((c) => [
      `let wk${c} = bt + wo${c} + k;`,
      ...is.map((i) =>
        `let u${i}_${c} = ${vec4Load(w, "w", `wk${c}${i === 0 ? "" : ` + ${i} * redG`}`)};`
      ),
    ])
    : js.flatMap((j) =>
      cols.map((c) =>
        `let b${j}_${c} = ${vec4Load(w, B, `bi${j === 0 ? "" : ` + ${j} * colG`} + cb${c}`)};`
      )
    );
  const dot = (r: number, i: number, c: number) =>
    w.va === 4 ? `dot(s${r}, u${i}_${c})` : `s${r} * u${i}_${c}`;
  const fma = rows.flatMap((r) => [
    `let s${r} = ${vec4Load(w, A, `o${r} + k`)} * f${r};`,
    ...cols.map((c) =>
      `a${r}_${c} += ${
        direct
          ? (w.vb === 4 ? `VB(${is.map((i) => dot(r, i, c)).join(", ")})` : dot(r, 0, c))
          : w.va === 4
          ? js.map((j) => `s${r}.${COMPONENTS[j]} * b${j}_${c}`).join(" + ")
          : `s${r} * b0_${c}`
      };`
    ),
  ]);
  const filterOffsets = direct
    ? "\n" + indent("  ", cols.map((c) => `let wo${c} = cb${c} * VB_W * redG;`))
    : "";
  const stores = rows.map((r) =>
    `if (m0 + ${r} < rows) {\n` +
    indent(
      "    ",
      cols.map((c) =>
        c === 0
          ? `store(ob${r} + c0, c0, a${r}_0);`
          : `if (c0 + ${c} < colG) { store(ob${r} + c0 + ${c}, c0 + ${c}, a${r}_${c}); }`
      ),
    ) + "\n  }"
  );
  const khLoop = fwd
    ? "for (var kh = 0; kh < uniforms.kH; kh++) {"
    : "for (var kh = ph; kh < uniforms.kH; kh += sH) {";
  const kwLoop = fwd
    ? "for (var kw = 0; kw < uniforms.kW; kw++) {"
    : "for (var kw = pw; kw < uniforms.kW; kw += sW) {";
  return `
fn main() {
  let redG = ${redC} / VA;
  let colG = ${colC} / VB_W;${fwd ? "" : PHASE_SETUP}
  let rows = ${fwd ? "uniforms.batch * uniforms.outH * uniforms.outW" : "uniforms.batch * hq * wq"};
  let colTiles = (colG + ${CG - 1}) / ${CG};
  let id = ${flatId(cfg.workgroupSize)};
  let rt = id / colTiles;
  let c0 = (id - rt * colTiles) * ${CG};
  let m0 = rt * ${R};
  if (m0 >= rows) {
    return;
  }
${clampedColumns(CG, "colG")}${filterOffsets}
${indent("  ", rowSetup)}
${indent("  ", rows.flatMap((r) => cols.map((c) => `var a${r}_${c} = VB(0.0);`)))}
  ${khLoop}
${indent("    ", hStep)}
    ${kwLoop}
${indent("      ", wStep)}
${
    direct
      ? "      let bt = (kh * uniforms.kW + kw) * uniforms.inC * redG;"
      : "      var bi = (kh * uniforms.kW + kw) * " + redC + " * colG;"
  }
      for (var k = 0; k < redG; k++) {
${indent("        ", [...bLoads, ...fma])}${direct ? "" : "\n        bi += VA * colG;"}
      }
    }
  }
${indent("  ", stores)}
}
`;
}

// ---- register tiles: bwdFilter ------------------------------------------------------------------

/**
 * The bnReluDz prologue of the bwdFilter register kernel: dz computed from dy and z as it is
 * loaded (per column group the 7 batch-norm terms are loaded once per invocation), for the
 * layers whose dz nobody else reads (no dx): saves the dz pass.
 */
export function bnReluDzPrologue(
  cols: number[],
  load: (name: string, index: string) => string = (name, index) => `${name}[${index}]`,
): { setup: string[]; load: string[] } {
  const names = ["mean", "invStd", "gam", "bet", "k", "a", "b"];
  return {
    setup: cols.flatMap((c) => names.map((n, i) => `let ${n}${c} = terms[${i} * outCG + cb${c}];`)),
    load: cols.flatMap((c) => [
      `let xh${c} = (${load("z", `zi + cb${c}`)} - mean${c}) * invStd${c};`,
      `let g${c} = select(VB(0.0), ${
        load("dy", `zi + cb${c}`)
      }, gam${c} * xh${c} + bet${c} > VB(0.0));`,
      `let d${c} = k${c} * (g${c} - a${c} - xh${c} * b${c});`,
    ]),
  };
}

function filterRowsRegister(cfg: TileConfig, w: GemmWidths, fusedDz: boolean): string {
  const TU = Math.max(1, cfg.rowsPerInvocation / w.va); // row vectors (units) per invocation
  const CG = columnGroups(cfg, w);
  const units = range(TU);
  const cols = range(CG);
  const js = range(w.va);
  const comp = (j: number) => (w.va === 4 ? `.${COMPONENTS[j]}` : "");
  const unitSetup = units.flatMap((t) => [
    `let u${t} = min(ub + ${t}, units - 1);`,
    `let ci${t} = u${t} % inCG;`,
    `let kh${t} = u${t} / (inCG * uniforms.kW);`,
    `let kw${t} = u${t} / inCG - kh${t} * uniforms.kW;`,
  ]);
  const rowStep = units.flatMap((t) => [
    `let hh${t} = oh * uniforms.strideH - uniforms.padTop + kh${t};`,
    `let hv${t} = hh${t} >= 0 && hh${t} < uniforms.inH;`,
    `let xr${t} = (n * uniforms.inH + hh${t}) * uniforms.inW * inCG + ci${t};`,
  ]);
  const bn = bnReluDzPrologue(cols, (name, index) => vec4Load(w, name, index));
  const pixelStep = [
    ...(fusedDz ? bn.load : cols.map((c) => `let d${c} = ${vec4Load(w, "dz", `zi + cb${c}`)};`)),
    "let iw = ow * uniforms.strideW - uniforms.padLeft;",
    ...units.flatMap((t) => [
      `let ww${t} = iw + kw${t};`,
      `let v${t} = hv${t} && ww${t} >= 0 && ww${t} < uniforms.inW;`,
      `let s${t} = ${
        vec4Load(w, "x", `select(0, xr${t} + ww${t} * inCG, v${t})`)
      } * select(0.0, 1.0, v${t});`,
    ]),
    ...units.flatMap((t) =>
      js.flatMap((j) => cols.map((c) => `a${t}_${j}_${c} += s${t}${comp(j)} * d${c};`))
    ),
  ];
  const stores = units.map((t) =>
    `if (ub + ${t} < units) {\n` +
    indent(
      "    ",
      js.flatMap((j) =>
        cols.map((c) => partialStore(`(ub + ${t}) * VA + ${j}`, c, `a${t}_${j}_${c}`))
      ),
    ) + "\n  }"
  );
  return `
fn main() {
${FILTER_GRAD_SIZES}
  let units = numRows / VA;
  let unitTiles = (units + ${TU - 1}) / ${TU};
  let colTiles = (outCG + ${CG - 1}) / ${CG};
  let tiles = unitTiles * colTiles;
${sliceTileLines("tiles", cfg.workgroupSize, CG)}
  let ub = ut * ${TU};
${clampedColumns(CG, "outCG")}
${fusedDz ? indent("  ", bn.setup) + "\n" : ""}${indent("  ", unitSetup)}
${
    indent(
      "  ",
      units.flatMap((t) => js.flatMap((j) => cols.map((c) => `var a${t}_${j}_${c} = VB(0.0);`))),
    )
  }
  let nr0 = s * uniforms.rowsPerSplit;
  let nr1 = min(uniforms.batch * uniforms.outH, nr0 + uniforms.rowsPerSplit);
  for (var nr = nr0; nr < nr1; nr++) {
    let n = nr / uniforms.outH;
    let oh = nr - n * uniforms.outH;
${indent("    ", rowStep)}
    var zi = nr * uniforms.outW * outCG;
    for (var ow = 0; ow < uniforms.outW; ow++) {
${indent("      ", pixelStep)}
      zi += outCG;
    }
  }
${indent("  ", stores)}
}
`;
}

// ---- workgroup tiles (all views) ----------------------------------------------------------------

/** Per-view GEMM sizes and the gathers of element (m, k) of A and (k, n) of B (scalar loads). */
function stagedView(view: ConvView): string {
  if (view === "fwd") {
    return `
fn gemmRows() -> i32 { return uniforms.batch * uniforms.outH * uniforms.outW; }
fn gemmCols() -> i32 { return uniforms.outC; }
fn gemmDepth() -> i32 { return uniforms.kH * uniforms.kW * uniforms.inC; }
fn loadA(m : i32, k : i32) -> f32 {
  if (m >= gemmRows() || k >= gemmDepth()) { return 0.0; }
  let hw = uniforms.outH * uniforms.outW;
  let n = m / hw;
  let oh = (m - n * hw) / uniforms.outW;
  let ow = m - n * hw - oh * uniforms.outW;
  let tap = k / uniforms.inC;
  let ci = k - tap * uniforms.inC;
  let kh = tap / uniforms.kW;
  let ih = oh * uniforms.strideH - uniforms.padTop + kh;
  let iw = ow * uniforms.strideW - uniforms.padLeft + tap - kh * uniforms.kW;
  if (ih < 0 || ih >= uniforms.inH || iw < 0 || iw >= uniforms.inW) { return 0.0; }
  return x[((n * uniforms.inH + ih) * uniforms.inW + iw) * uniforms.inC + ci];
}
fn loadB(k : i32, c : i32) -> f32 {
  if (k >= gemmDepth() || c >= uniforms.outC) { return 0.0; }
  return w[k * uniforms.outC + c];
}
fn outIndex(m : i32, c : i32) -> i32 { return m * uniforms.outC + c; }
`;
  }
  if (view === "bwdData") {
    // Rows: the pixels of this workgroup's stride phase; k = (tap of the phase, co). The depth
    // is the largest phase's (uniform loop bound); taps past this phase's count read 0.
    return `
var<private> ph : i32;
var<private> pw : i32;
var<private> ih0 : i32;
var<private> iw0 : i32;
var<private> hq : i32;
var<private> wq : i32;
fn phaseSetup() {
  let sH = uniforms.strideH;
  let sW = uniforms.strideW;
  ph = i32(workgroupId.z) / sW;
  pw = i32(workgroupId.z) - ph * sW;
  ih0 = ((ph - uniforms.padTop) % sH + sH) % sH;
  iw0 = ((pw - uniforms.padLeft) % sW + sW) % sW;
  hq = max(0, (uniforms.inH - ih0 + sH - 1) / sH);
  wq = max(0, (uniforms.inW - iw0 + sW - 1) / sW);
}
fn gemmRows() -> i32 { return uniforms.batch * hq * wq; }
fn gemmCols() -> i32 { return uniforms.inC; }
fn tapsH() -> i32 { return (uniforms.kH + uniforms.strideH - 1) / uniforms.strideH; }
fn tapsW() -> i32 { return (uniforms.kW + uniforms.strideW - 1) / uniforms.strideW; }
fn gemmDepth() -> i32 { return tapsH() * tapsW() * uniforms.outC; }
/** (kh, kw, co) of reduction step k, kh < 0 when the phase has no such tap. */
fn tapOf(k : i32) -> vec3<i32> {
  let t = k / uniforms.outC;
  let co = k - t * uniforms.outC;
  let th = t / tapsW();
  let kh = ph + th * uniforms.strideH;
  let kw = pw + (t - th * tapsW()) * uniforms.strideW;
  let ok = k < gemmDepth() && kh < uniforms.kH && kw < uniforms.kW;
  return vec3<i32>(select(-1, kh, ok), kw, co);
}
fn pixelOf(m : i32) -> vec3<i32> {
  let n = m / (hq * wq);
  let p = m - n * hq * wq;
  let i = p / wq;
  return vec3<i32>(n, ih0 + i * uniforms.strideH, iw0 + (p - i * wq) * uniforms.strideW);
}
fn loadA(m : i32, k : i32) -> f32 {
  let t = tapOf(k);
  if (m >= gemmRows() || t.x < 0) { return 0.0; }
  let px = pixelOf(m);
  let th = px.y + uniforms.padTop - t.x;
  let tw = px.z + uniforms.padLeft - t.y;
  let oh = th / uniforms.strideH;
  let ow = tw / uniforms.strideW;
  if (th < 0 || oh >= uniforms.outH || tw < 0 || ow >= uniforms.outW) { return 0.0; }
  return dz[((px.x * uniforms.outH + oh) * uniforms.outW + ow) * uniforms.outC + t.z];
}
fn loadB(k : i32, c : i32) -> f32 {
  let t = tapOf(k);
  if (t.x < 0 || c >= uniforms.inC) { return 0.0; }
  return wt[((t.x * uniforms.kW + t.y) * uniforms.outC + t.z) * uniforms.inC + c];
}
fn outIndex(m : i32, c : i32) -> i32 {
  let px = pixelOf(m);
  return ((px.x * uniforms.inH + px.y) * uniforms.inW + px.z) * uniforms.inC + c;
}
`;
  }
  // bwdFilter: rows = (tap, ci), cols = co, k = output pixel of slice workgroupId.z.
  return `
fn gemmRows() -> i32 { return uniforms.kH * uniforms.kW * uniforms.inC; }
fn gemmCols() -> i32 { return uniforms.outC; }
fn gemmDepth() -> i32 { return uniforms.rowsPerSplit * uniforms.outW; }
fn pixel(k : i32) -> i32 { return i32(workgroupId.z) * gemmDepth() + k; }
fn loadA(m : i32, k : i32) -> f32 {
  let p = pixel(k);
  if (m >= gemmRows() || k >= gemmDepth() || p >= uniforms.batch * uniforms.outH * uniforms.outW) {
    return 0.0;
  }
  let tap = m / uniforms.inC;
  let ci = m - tap * uniforms.inC;
  let kh = tap / uniforms.kW;
  let nr = p / uniforms.outW;
  let n = nr / uniforms.outH;
  let ih = (nr - n * uniforms.outH) * uniforms.strideH - uniforms.padTop + kh;
  let iw = (p - nr * uniforms.outW) * uniforms.strideW - uniforms.padLeft + tap - kh * uniforms.kW;
  if (ih < 0 || ih >= uniforms.inH || iw < 0 || iw >= uniforms.inW) { return 0.0; }
  return x[((n * uniforms.inH + ih) * uniforms.inW + iw) * uniforms.inC + ci];
}
fn loadB(k : i32, c : i32) -> f32 {
  let p = pixel(k);
  if (k >= gemmDepth() || c >= uniforms.outC || p >= uniforms.batch * uniforms.outH * uniforms.outW) {
    return 0.0;
  }
  return dz[p * uniforms.outC + c];
}
fn outIndex(m : i32, c : i32) -> i32 {
  return (i32(workgroupId.z) * gemmRows() + m) * uniforms.outC + c;
}
`;
}

function workgroupTiles(view: ConvView, cfg: TileConfig): string {
  const [WR, WC] = cfg.workgroupGrid ?? [8, 8];
  const R = cfg.rowsPerInvocation;
  const C = cfg.colsPerInvocation;
  const KC = cfg.kChunk ?? 16;
  const BM = WR * R;
  const BN = WC * C;
  const WG = WR * WC;
  const rows = range(R);
  const cols = range(C);
  return `${stagedView(view)}
var<workgroup> As : array<f32, ${BM * KC}>;
var<workgroup> Bs : array<f32, ${KC * BN}>;

fn main() {${view === "bwdData" ? "\n  phaseSetup();" : ""}
  let lid = i32(localId.x);
  let lr = lid / ${WC};
  let lc = lid - lr * ${WC};
  let blk = i32(workgroupId.x) + i32(workgroupId.y) * i32(numWorkgroups.x);
  let colBlocks = (gemmCols() + ${BN - 1}) / ${BN};
  let m0 = (blk / colBlocks) * ${BM};
  let n0 = (blk - (blk / colBlocks) * colBlocks) * ${BN};
${indent("  ", rows.flatMap((r) => cols.map((c) => `var a${r}_${c} = 0.0;`)))}
  let depth = ${
    view === "bwdFilter"
      ? "uniforms.rowsPerSplit * uniforms.outW"
      : view === "fwd"
      ? "uniforms.kH * uniforms.kW * uniforms.inC"
      : "((uniforms.kH + uniforms.strideH - 1) / uniforms.strideH) * ((uniforms.kW + uniforms.strideW - 1) / uniforms.strideW) * uniforms.outC"
  };
  for (var k0 = 0; k0 < depth; k0 += ${KC}) {
    for (var e = lid; e < ${BM * KC}; e += ${WG}) {
      let row = e / ${KC};
      As[e] = loadA(m0 + row, k0 + e - row * ${KC});
    }
    for (var e = lid; e < ${KC * BN}; e += ${WG}) {
      let kk = e / ${BN};
      Bs[e] = loadB(k0 + kk, n0 + e - kk * ${BN});
    }
    workgroupBarrier();
    for (var kk = 0; kk < ${KC}; kk++) {
${indent("      ", rows.map((r) => `let s${r} = As[(lr + ${r * WR}) * ${KC} + kk];`))}
${indent("      ", cols.map((c) => `let b${c} = Bs[kk * ${BN} + lc + ${c * WC}];`))}
${indent("      ", rows.flatMap((r) => cols.map((c) => `a${r}_${c} += s${r} * b${c};`)))}
    }
    workgroupBarrier();
  }
  let rowsM = gemmRows();
  let colsN = gemmCols();
${
    indent(
      "  ",
      rows.flatMap((r) =>
        cols.map((c) =>
          `if (m0 + lr + ${r * WR} < rowsM && n0 + lc + ${
            c * WC
          } < colsN) { store(outIndex(m0 + lr + ${r * WR}, n0 + lc + ${c * WC}), n0 + lc + ${
            c * WC
          }, a${r}_${c}); }`
        )
      ),
    )
  }
}
`;
}

/** The complete user code (tfjs adds bindings, uniforms and the entry point) of one kernel. */
export function convGemmSource(
  view: ConvView,
  cfg: TileConfig,
  widths: GemmWidths,
  epilogue: ConvEpilogue,
  fusedDz = false,
): string {
  if (fusedDz && (view !== "bwdFilter" || cfg.stageInWorkgroupMemory)) {
    throw new Error(`the bnReluDz prologue needs a register bwdFilter config, got ${cfg.id}`);
  }
  const header =
    `// ${view} ${cfg.id} va${widths.va} vb${widths.vb} ${epilogue} (src/ops/conv/gemm_wgsl.ts)\n` +
    `alias VB = ${
      vecType(widths.vb)
    };\nconst VA : i32 = ${widths.va};\nconst VB_W : i32 = ${widths.vb};\n`;
  const strides = widths.strides && view === "bwdData" && !cfg.stageInWorkgroupMemory
    ? `const SH : i32 = ${widths.strides[0]};\nconst SW : i32 = ${widths.strides[1]};\n`
    : "const SH : i32 = 0;\nconst SW : i32 = 0;\n"; // unused
  const body = cfg.stageInWorkgroupMemory
    ? workgroupTiles(view, cfg)
    : widths.window && view !== "bwdFilter"
    ? windowRowsRegister(view, cfg, widths)
    : view === "bwdFilter" && widths.window
    ? windowFilterRegister(
      cfg,
      widths,
      fusedDz
        ? bnReluDzPrologue(
          range(columnGroups(cfg, widths)),
          (name, index) => vec4Load(widths, name, index),
        )
        : null,
    )
    : view === "bwdFilter"
    ? filterRowsRegister(cfg, widths, fusedDz)
    : pixelRowsRegister(view, cfg, widths);
  return header + strides + EPILOGUES[epilogue] + body;
}
