// Row-window register tiles (TileConfig.rowWindow) for fwd and stride-1 bwdData: an
// invocation owns R consecutive output pixels of one image row x C output channels, and per
// filter row kh and reduction step loads the (R - 1) * SW + KW input pixels its taps cover once,
// instead of R * KW pixel loads (one per row and tap) as the pixel-row kernel does. On llvmpipe
// every storage load is a per-lane scalar sequence and costs ~10x a multiply-add (the header of
// gemm_wgsl.ts): with R = 32, C = 16, a 3x3 kernel loads 0.053 operand floats per multiply-add
// instead of 0.094 for the pixel-row r16c32 tile (same 512 accumulators).
//
// KW and SW are compile-time constants (GemmWidths.window, part of the shader key): the window
// lives in unrolled registers, indexed by constants only (WGSL arrays went to scratch memory on
// llvmpipe, 0.6x). bwdData runs as a forward pass over dz with the transposed filter wt
// (KH, KW, Cout, Cin) read with flipped taps; its strided case keeps the pixel-row kernel
// (gemm.ts's gemmWidths decides).

import type { TileConfig } from "./tiling.ts";
import type { GemmWidths } from "./gemm_wgsl.ts";
import {
  clampedColumns,
  columnGroups,
  COMPONENTS,
  flatId,
  indent,
  range,
  vec4Load,
} from "./codegen.ts";
import { FILTER_GRAD_SIZES, partialStore, sliceTileLines } from "./filter_grad_wgsl.ts";

/**
 * The tile a row-window config gets at an output row `width` and `channels` columns: rows are
 * the row split evenly into tiles of at most R pixels, and where that is fewer than R the
 * columns grow by the same factor (up to the layer's channels), so the accumulator budget R x C
 * stays: r28c16 is 28 x 16 at width 28, 14 x 32 at width 14, 7 x 64 at width 7.
 * Measured at batch 32 (BENCHMARKS.md): at width 14 the 14 x 32 tile ran 1.5x the 28 x 16 one.
 */
export function windowTile(cfg: TileConfig, width: number, channels: number) {
  const R = cfg.rowsPerInvocation;
  const rows = Math.ceil(width / Math.ceil(width / R));
  const grow = Math.max(1, Math.floor(R / rows));
  const cols = Math.max(
    cfg.colsPerInvocation,
    Math.min(cfg.colsPerInvocation * grow, Math.ceil(channels / 4) * 4),
  );
  return { rows, cols };
}

/** Column groups of a row-window tile (VB units; a vec4 config at scalar widths keeps cols/4). */
function windowColumnGroups(w: GemmWidths): number {
  return Math.max(1, Math.floor((w.window?.cols ?? 4) / 4));
}

/** Invocations a row-window kernel needs: row tiles x column tiles. */
export function windowInvocations(
  w: GemmWidths,
  images: number,
  outH: number,
  outW: number,
  cols: number,
): number {
  const rowTiles = images * outH * Math.ceil(outW / w.window!.rows!);
  return rowTiles * Math.ceil(cols / w.vb / windowColumnGroups(w));
}

/**
 * The WGSL main() of a row-window kernel. fwd: A = x (N, H, W, Cin), B = w (KH, KW, Cin, Cout).
 * bwdData (stride 1): A = dz (N, Ho, Wo, Cout), B = wt (KH, KW, Cout, Cin) with taps flipped,
 * output dx (N, H, W, Cin).
 */
export function windowRowsRegister(
  view: "fwd" | "bwdData",
  cfg: TileConfig,
  w: GemmWidths,
): string {
  if (!w.window) throw new Error(`${cfg.id}: a row-window kernel needs GemmWidths.window`);
  const { kw: KW, sw: SW } = w.window;
  const R = w.window.rows ?? cfg.rowsPerInvocation;
  const CG = w.window.cols ? windowColumnGroups(w) : columnGroups(cfg, w);
  const Q = (R - 1) * SW + KW; // input pixels the row's taps cover
  const fwd = view === "fwd";
  const A = fwd ? "x" : "dz";
  const B = fwd ? "w" : "wt";
  const rows = range(R);
  const cols = range(CG);
  const qs = range(Q);
  const js = range(w.va);
  // Output grid and source grid: fwd writes (outH, outW) from (inH, inW); bwdData the reverse.
  const [oH, oW, sH, sWidth, redC, colC] = fwd
    ? [
      "uniforms.outH",
      "uniforms.outW",
      "uniforms.inH",
      "uniforms.inW",
      "uniforms.inC",
      "uniforms.outC",
    ]
    : [
      "uniforms.inH",
      "uniforms.inW",
      "uniforms.outH",
      "uniforms.outW",
      "uniforms.outC",
      "uniforms.inC",
    ];
  // First source row/column of the window; bwdData's tap t reads filter tap K - 1 - t.
  const origin = fwd
    ? [
      "let ih0 = oh * uniforms.strideH - uniforms.padTop;",
      `let iw0 = ow0 * ${SW} - uniforms.padLeft;`,
    ]
    : [
      "let ih0 = oh + uniforms.padTop - (uniforms.kH - 1);",
      `let iw0 = ow0 + uniforms.padLeft - ${KW - 1};`,
    ];
  const filterTap = (kw: number) =>
    fwd ? `(kh * ${KW} + ${kw})` : `((uniforms.kH - 1 - kh) * ${KW} + ${KW - 1 - kw})`;
  // Filter split over one uniform binding per filter row (GemmWidths.uniformFilterParts > 1):
  // `B` holds row 0, `B_1`.. the others; the kh loop is unrolled (KH = parts, a constant), so
  // each copy reads its row's binding at the tap's offset within the row.
  const parts = w.uniformFilterParts ?? 0;
  const split = parts > 1;
  const filterLoad = (kw: number, j: number, c: number, kh: number) => {
    const at = `k * VA${j === 0 ? "" : ` + ${j}`}) * colG + cb${c}`;
    if (!split) return vec4Load(w, B, `(${filterTap(kw)} * ${redC} + ${at}`);
    const row = fwd ? kh : parts - 1 - kh;
    return `${row === 0 ? B : `${B}_${row}`}[(${fwd ? kw : KW - 1 - kw} * ${redC} + ${at}]`;
  };
  const loadA = (i: string) => vec4Load(w, A, i);
  const windowSetup = qs.flatMap((q) => [
    `let wv${q} = hv && iw0 + ${q} >= 0 && iw0 + ${q} < ${sWidth};`,
    `let wo${q} = select(0, (hb + iw0 + ${q}) * redG, wv${q});`,
    `let wf${q} = select(0.0, 1.0, wv${q});`,
  ]);
  const taps = (kh: number) =>
    range(KW).flatMap((kw) => [
      ...js.flatMap((j) => cols.map((c) => `let b${kw}_${j}_${c} = ${filterLoad(kw, j, c, kh)};`)),
      ...rows.flatMap((r) =>
        cols.map((c) => {
          const s = `s${r * SW + kw}`;
          const terms = js.map((j) =>
            (w.va === 4 ? `${s}.${COMPONENTS[j]}` : s) + ` * b${kw}_${j}_${c}`
          );
          return `a${r}_${c} += ${terms.join(" + ")};`;
        })
      ),
    ]);
  const nested = (lines: string[]) => lines.map((l) => `  ${l}`);
  // One filter row: kh is the loop variable, or a constant where the loop is unrolled.
  const filterRow = (kh: number) => [
    "let hh = ih0 + kh;",
    `let hv = hh >= 0 && hh < ${sH};`,
    `let hb = (n * ${sH} + hh) * ${sWidth};`,
    ...windowSetup,
    "for (var k = 0; k < redG; k++) {",
    ...nested(qs.map((q) => `let s${q} = ${loadA(`wo${q} + k`)} * wf${q};`)),
    ...nested(taps(kh)),
    "}",
  ];
  const khLoop = split
    ? range(parts).flatMap((kh) => ["{", `  let kh = ${kh};`, ...nested(filterRow(kh)), "}"])
    : ["for (var kh = 0; kh < uniforms.kH; kh++) {", ...nested(filterRow(0)), "}"];
  const stores = rows.map((r) =>
    `if (ow0 + ${r} < ${oW}) {\n` +
    indent(
      "    ",
      cols.map((c) =>
        c === 0
          ? `store(ob + ${r} * colG + c0, c0, a${r}_0);`
          : `if (c0 + ${c} < colG) { store(ob + ${r} * colG + c0 + ${c}, c0 + ${c}, a${r}_${c}); }`
      ),
    ) + "\n  }"
  );
  return `
fn main() {
  let redG = ${redC} / VA;
  let colG = ${colC} / VB_W;
  let owTiles = (${oW} + ${R - 1}) / ${R};
  let rowTiles = uniforms.batch * ${oH} * owTiles;
  let colTiles = (colG + ${CG - 1}) / ${CG};
  let id = ${flatId(cfg.workgroupSize)};
  let rt = id / colTiles;
  let c0 = (id - rt * colTiles) * ${CG};
  if (rt >= rowTiles) {
    return;
  }
  let nh = rt / owTiles;
  let ow0 = (rt - nh * owTiles) * ${R};
  let n = nh / ${oH};
  let oh = nh - n * ${oH};
${indent("  ", origin)}
  let ob = ((n * ${oH} + oh) * ${oW} + ow0) * colG;
${clampedColumns(CG, "colG")}
${indent("  ", rows.flatMap((r) => cols.map((c) => `var a${r}_${c} = VB(0.0);`)))}
${indent("  ", khLoop)}
${indent("  ", stores)}
}
`;
}

/**
 * Tap-window bwdFilter (stride-1 columns): an invocation owns one filter row kh, all KW taps of
 * it, G = R / VA input-channel groups and C output channels, and walks its slice's output
 * pixels along each row keeping the KW input vectors its taps read in registers: one new x load
 * per pixel and group instead of KW (the others shift along). With the fused bnReluDz prologue
 * the dz of a pixel is computed once for KW x R filter rows instead of R.
 */
export function windowFilterRegister(
  cfg: TileConfig,
  w: GemmWidths,
  prologue: { setup: string[]; load: string[] } | null,
): string {
  if (!w.window) throw new Error(`${cfg.id}: a tap-window kernel needs GemmWidths.window`);
  const KW = w.window.kw;
  const G = Math.max(1, (w.window.rows ?? cfg.rowsPerInvocation) / w.va);
  const CG = columnGroups(cfg, w);
  const taps = range(KW);
  const groups = range(G);
  const cols = range(CG);
  const js = range(w.va);
  const comp = (j: number) => (w.va === 4 ? `.${COMPONENTS[j]}` : "");
  const dzLoad = (i: string) => vec4Load(w, "dz", i);
  const load = (g: number, col: string) => {
    const valid = `hv && ${col} >= 0 && ${col} < uniforms.inW`;
    const at = `select(0, xr + (${col}) * inCG + ci${g}, ${valid})`;
    return `${vec4Load(w, "x", at)} * select(0.0, 1.0, ${valid})`;
  };
  const accs = taps.flatMap((kw) =>
    groups.flatMap((g) => js.flatMap((j) => cols.map((c) => `a${kw}_${g}_${j}_${c}`)))
  );
  const pixel = [
    ...(prologue ? prologue.load : cols.map((c) => `let d${c} = ${dzLoad(`zi + cb${c}`)};`)),
    `let iwn = ow - uniforms.padLeft + ${KW - 1};`,
    ...groups.map((g) => `xw${KW - 1}_${g} = ${load(g, "iwn")};`),
    ...taps.flatMap((kw) =>
      groups.flatMap((g) =>
        js.flatMap((j) =>
          cols.map((c) => `a${kw}_${g}_${j}_${c} += xw${kw}_${g}${comp(j)} * d${c};`)
        )
      )
    ),
    ...taps.slice(0, -1).flatMap((kw) => groups.map((g) => `xw${kw}_${g} = xw${kw + 1}_${g};`)),
    "zi += outCG;",
  ];
  const stores = taps.flatMap((kw) =>
    groups.map((g) =>
      `if (cg0 + ${g} < inCG) {\n` +
      indent(
        "    ",
        js.flatMap((j) =>
          cols.map((c) =>
            partialStore(
              `(kh * ${KW} + ${kw}) * uniforms.inC + (cg0 + ${g}) * VA + ${j}`,
              c,
              `a${kw}_${g}_${j}_${c}`,
            )
          )
        ),
      ) + "\n  }"
    )
  );
  return `
fn main() {
${FILTER_GRAD_SIZES}
  let ciTiles = (inCG + ${G - 1}) / ${G};
  let colTiles = (outCG + ${CG - 1}) / ${CG};
  let tiles = uniforms.kH * ciTiles * colTiles;
${sliceTileLines("tiles", cfg.workgroupSize, CG)}
  let kh = ut / ciTiles;
  let cg0 = (ut - kh * ciTiles) * ${G};
${indent("  ", groups.map((g) => `let ci${g} = min(cg0 + ${g}, inCG - 1);`))}
${clampedColumns(CG, "outCG")}
${prologue ? indent("  ", prologue.setup) + "\n" : ""}${
    indent("  ", accs.map((a) => `var ${a} = VB(0.0);`))
  }
${
    indent(
      "  ",
      taps.flatMap((kw) =>
        groups.map((g) => `var xw${kw}_${g} = ${w.va === 4 ? "vec4<f32>" : "f32"}(0.0);`)
      ),
    )
  }
  let nr0 = s * uniforms.rowsPerSplit;
  let nr1 = min(uniforms.batch * uniforms.outH, nr0 + uniforms.rowsPerSplit);
  for (var nr = nr0; nr < nr1; nr++) {
    let n = nr / uniforms.outH;
    let oh = nr - n * uniforms.outH;
    let hh = oh * uniforms.strideH - uniforms.padTop + kh;
    let hv = hh >= 0 && hh < uniforms.inH;
    let xr = (n * uniforms.inH + hh) * uniforms.inW * inCG;
${
    indent(
      "    ",
      taps.slice(0, -1).flatMap((kw) =>
        groups.map((g) => `xw${kw}_${g} = ${load(g, `${kw} - uniforms.padLeft`)};`)
      ),
    )
  }
    var zi = nr * uniforms.outW * outCG;
    for (var ow = 0; ow < uniforms.outW; ow++) {
${indent("      ", pixel)}
    }
  }
${indent("  ", stores)}
}
`;
}
