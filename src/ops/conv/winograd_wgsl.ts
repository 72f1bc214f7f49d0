// WGSL of the Winograd F(2x2, 3x3) convolution passes (winograd_geometry.ts gives the math,
// winograd.ts runs them). Every transformed buffer is vec4 along its channel axis, padded to
// a multiple of 4 with zeros (k4 = ceil(K / 4), n4 = ceil(N / 4) vec4s), so the GEMMs never fall
// back to scalar loads; a plane p = 0..15 is one entry of the 4x4 transformed tile:
//   input transform   x (N, H, W, K)  -> V (16, tiles, k4)        B^T d B per tile and channel
//   filter transform  w (3, 3, ., .)  -> U (16, 4 k4, n4)         G g G^T (rotated for bwdData)
//   GEMM per plane    V, U            -> M (16, tiles, n4)        M[p] = V[p] U[p]
//   output transform  M               -> y (N, Ho, Wo, N)         A^T m A, then the epilogue
// and for the filter gradient (F(3x3, 2x2)):
//   dz transform      dz (N, Ho, Wo, N) -> Z (16, tiles, n4)      A dz A^T per 2x2 dz tile
//   GEMM over tiles   V, Z            -> P (S, 16, 4 k4, n4)      per slice s of the tiles:
//                                                                  P[s, p] = V[p]^T Z[p]
//   filter output     P               -> dW (3, 3, K, N)          G^T (sum_s P[s]) G
// The GEMMs are register tiles as in gemm_wgsl.ts (unrolled vec4 accumulators, operands
// straight from storage): R rows x CG vec4 columns per invocation, so the loads per FMA are
// those of the direct kernels' register configs; the transforms are memory passes, one
// invocation per (tile, channel vec4), adjacent lanes on adjacent channel vec4s.
//
// Measured (llvmpipe, LLVM 15, 2 busy cores, batch 128, GPU timestamps, bench/probes/winograd_probe.ts
// and per-pass tf.time): at 28x28 32->32 the forward's GEMM takes 250-490 ms of its 280-600 ms,
// the input transform 60-100, the output transform 10-70, the filter transform < 0.1; the filter
// gradient's GEMM over tiles 75-130 ms of 120-280 (same multiplies as the forward's GEMM, but a
// reduction of ~800 tiles per invocation against the forward's K = 32 channels, so stores and
// per-invocation set-up weigh less). A forward GEMM with rows across lanes (invocation i of a
// workgroup taking rows i, i + 64, .. of a tiles-inner V, so V loads are contiguous across lanes
// and U loads uniform) ran 1.1-2.2x slower on llvmpipe in the same process (r16c32 339 -> 759 ms,
// r8c16 515 -> 536, r32c32 352 -> 399, medians of 3): not kept.

import { type ConvEpilogue, epilogueSnippet } from "./gemm_wgsl.ts";
import { clampedColumns, COMPONENTS, flatId, indent, range, SIZE_FIELDS } from "./codegen.ts";
import { sliceTileLines } from "./filter_grad_wgsl.ts";

/** Uniform fields of every Winograd pass (order = uniform struct order). */
export const WINOGRAD_FIELDS = [
  ...SIZE_FIELDS,
  "padTop",
  "padLeft",
  "tilesH",
  "tilesW",
  "tiles",
  "k4",
  "n4",
  // filter-gradient GEMM: tiles per slice and slices; 0 elsewhere.
  "rowsPerSplit",
  "numSplits",
  // batch chunks (winograd.ts): the chunk's first image in x / dz / y, and its first slice in
  // the filter gradient's partials.
  "imageOffset",
  "sliceOffset",
] as const;

/** `let` lines applying a 1-D transform (rows of coefficients) to values named `src(i)`. */
function apply1d(
  coeffs: readonly (readonly number[])[],
  src: (i: number) => string,
  dst: (o: number) => string,
): string[] {
  return coeffs.map((row, o) => {
    const terms: string[] = [];
    row.forEach((c, i) => {
      if (c === 0) return;
      const mag = Math.abs(c) === 1 ? src(i) : `${Math.abs(c).toFixed(1)} * ${src(i)}`;
      terms.push(terms.length === 0 ? (c < 0 ? `-${mag}` : mag) : `${c < 0 ? "-" : "+"} ${mag}`);
    });
    return `let ${dst(o)} = ${terms.join(" ")};`;
  });
}

/**
 * L X R of named vec4 values: X is rows x cols (`x{i}_{j}`-style names from `src(i, j)`),
 * result `dst(i, j)`; rows transformed first (`t{o}_{j}` temporaries with prefix `tmp`).
 */
function sandwich(
  l: readonly (readonly number[])[],
  r: readonly (readonly number[])[], // R given as its transpose's rows: out col j = sum_k r[j][k] t[.][k]
  xCols: number,
  src: (i: number, j: number) => string,
  dst: (i: number, j: number) => string,
  tmp: string,
): string[] {
  const lines: string[] = [];
  for (let j = 0; j < xCols; j++) {
    lines.push(...apply1d(l, (i) => src(i, j), (o) => `${tmp}${o}_${j}`));
  }
  for (let i = 0; i < l.length; i++) {
    lines.push(...apply1d(r, (k) => `${tmp}${i}_${k}`, (o) => dst(i, o)));
  }
  return lines;
}

// The matrices as rows of coefficients (winograd_ref.ts holds the same, tested there).
const BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]];
const G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
const GT = [[1, 0.5, 0.5, 0], [0, 0.5, -0.5, 0], [0, 0.5, 0.5, 1]];
const AT = [[1, 1, 1, 0], [0, 1, -1, -1]];
const A = [[1, 0], [1, 1], [1, -1], [0, -1]];

/**
 * The transforms' split of the flat id: tile t (past the tiles: return) and channel vec4 c4 of
 * `c4s` (uniforms.k4 or n4) per tile, then tile t -> image n, tile row ty, tile column tx.
 */
function tileChannelLines(c4s: string): string {
  return `  let id = ${flatId(64)};
  let t = id / uniforms.${c4s};
  if (t >= uniforms.tiles) {
    return;
  }
  let c4 = id - t * uniforms.${c4s};
  let n = t / (uniforms.tilesH * uniforms.tilesW);
  let tr = t - n * uniforms.tilesH * uniforms.tilesW;
  let ty = tr / uniforms.tilesW;
  let tx = tr - ty * uniforms.tilesW;`;
}

/** Index of (tile t, vec4 c4) in plane 0 of a (16, tiles, `c4s`) buffer, and the plane stride. */
function planeIndexLines(c4s: string): string {
  return `  let stride = uniforms.tiles * uniforms.${c4s};
  let o = t * uniforms.${c4s} + c4;`;
}

/** One line per plane p = 0..15 of the 4x4 tile, `line(p, "r_c")`, indented by `pad`. */
function perPlane(pad: string, line: (p: number, rc: string) => string): string {
  return indent(pad, range(16).map((p) => line(p, `${p >> 2}_${p & 3}`)));
}

/**
 * `fn name(n, h, w, c4) -> vec4<f32>`: channel vec4 c4 of pixel (n, h, w) of the NHWC buffer
 * `buf` (height, width, channels and channel vec4s the uniforms named in `dims`), zeros where
 * `outside` holds; `width` 4: buf is vec4 (C % 4 == 0), 1: four guarded scalar loads.
 */
function vec4LoaderSource(
  name: string,
  buf: string,
  dims: { H: string; W: string; C: string; C4: string },
  outside: string,
  width: 1 | 4,
): string {
  const pixel = `(n * uniforms.${dims.H} + h) * uniforms.${dims.W} + w`;
  const load = width === 4
    ? `return ${buf}[(${pixel}) * uniforms.${dims.C4} + c4];`
    : `let b = (${pixel}) * uniforms.${dims.C} + 4 * c4;
  var v = vec4<f32>(0.0);
${
      indent(
        "  ",
        range(4).map((j) =>
          `if (4 * c4 + ${j} < uniforms.${dims.C}) { v.${COMPONENTS[j]} = ${buf}[b + ${j}]; }`
        ),
      )
    }
  return v;`;
  return `
fn ${name}(n : i32, h : i32, w : i32, c4 : i32) -> vec4<f32> {
  if (${outside}) {
    return vec4<f32>(0.0);
  }
  ${load}
}
`;
}

/**
 * Input transform: one invocation per (tile, channel vec4) of `x` (`va` 4: x is read as vec4,
 * inC % 4 == 0; 1: four guarded scalar loads).
 */
export function inputTransformSource(va: 1 | 4): string {
  const rc = range(4);
  const dims = { H: "inH", W: "inW", C: "inC", C4: "k4" };
  const outside = "h < 0 || h >= uniforms.inH || w < 0 || w >= uniforms.inW";
  return vec4LoaderSource("loadX", "x", dims, outside, va) + `
fn main() {
${tileChannelLines("k4")}
  let img = n + uniforms.imageOffset;
  let h0 = 2 * ty - uniforms.padTop;
  let w0 = 2 * tx - uniforms.padLeft;
${
    indent(
      "  ",
      rc.flatMap((r) => rc.map((c) => `let d${r}_${c} = loadX(img, h0 + ${r}, w0 + ${c}, c4);`)),
    )
  }
${indent("  ", sandwich(BT, BT, 4, (i, j) => `d${i}_${j}`, (i, j) => `v${i}_${j}`, "e"))}
${planeIndexLines("k4")}
${perPlane("  ", (p, rc) => `result[o + ${p} * stride] = v${rc};`)}
}
`;
}

/**
 * Filter transform: one invocation per (reduction row k < 4 k4, output vec4). `rotated` (bwdData):
 * the data view's filter g'[a][b][k][n] = w[2 - a][2 - b][n][k] (k = the layer's Cout). Reads w
 * as scalars (9 K N elements: a small pass), writes zeros in the padding.
 */
export function filterTransformSource(rotated: boolean): string {
  const index = rotated
    ? (a: number, b: number) => `(${(2 - a) * 3 + (2 - b)} * uniforms.outC + nn) * uniforms.inC + k`
    : (a: number, b: number) => `(${a * 3 + b} * uniforms.inC + k) * uniforms.outC + nn`;
  const r3 = range(3);
  return `
fn main() {
  let id = ${flatId(64)};
  let k = id / uniforms.n4;
  if (k >= 4 * uniforms.k4) {
    return;
  }
  let c4 = id - k * uniforms.n4;
${
    indent(
      "  ",
      r3.flatMap((a) => r3.map((b) => `var g${a}_${b} = vec4<f32>(0.0);`)),
    )
  }
  for (var j = 0; j < 4; j++) {
    let nn = 4 * c4 + j;
    if (k < uniforms.inC && nn < uniforms.outC) {
${indent("      ", r3.flatMap((a) => r3.map((b) => `g${a}_${b}[j] = w[${index(a, b)}];`)))}
    }
  }
${indent("  ", sandwich(G, G, 3, (i, j) => `g${i}_${j}`, (i, j) => `u${i}_${j}`, "e"))}
  let stride = 4 * uniforms.k4 * uniforms.n4;
  let o = k * uniforms.n4 + c4;
${perPlane("  ", (p, rc) => `result[o + ${p} * stride] = u${rc};`)}
}
`;
}

/**
 * Per-plane GEMM M[p] = V[p] (tiles x 4 k4) U[p] (4 k4 x n4 vec4): R tiles x CG column vec4s per
 * invocation, plane = grid z.
 */
export function gemmSource(R: number, CG: number, wg: number): string {
  const rows = range(R);
  const cols = range(CG);
  const js = range(4);
  return `
fn main() {
  let p = i32(workgroupId.z);
  let rows = uniforms.tiles;
  let colTiles = (uniforms.n4 + ${CG - 1}) / ${CG};
  let id = ${flatId(wg)};
  let rt = id / colTiles;
  let c0 = (id - rt * colTiles) * ${CG};
  let m0 = rt * ${R};
  if (m0 >= rows) {
    return;
  }
${clampedColumns(CG, "uniforms.n4")}
${
    indent(
      "  ",
      rows.map((r) => `let ar${r} = (p * rows + min(m0 + ${r}, rows - 1)) * uniforms.k4;`),
    )
  }
${indent("  ", rows.flatMap((r) => cols.map((c) => `var a${r}_${c} = vec4<f32>(0.0);`)))}
  var bi = p * 4 * uniforms.k4 * uniforms.n4;
  for (var k = 0; k < uniforms.k4; k++) {
${
    indent(
      "    ",
      [
        ...js.flatMap((j) =>
          cols.map((c) =>
            `let b${j}_${c} = U[bi + ${j === 0 ? "" : `${j} * uniforms.n4 + `}cb${c}];`
          )
        ),
        ...rows.flatMap((r) => [
          `let s${r} = V[ar${r} + k];`,
          ...cols.map((c) =>
            `a${r}_${c} += ${js.map((j) => `s${r}.${COMPONENTS[j]} * b${j}_${c}`).join(" + ")};`
          ),
        ]),
      ],
    )
  }
    bi += 4 * uniforms.n4;
  }
${
    indent(
      "  ",
      rows.map((r) =>
        `if (m0 + ${r} < rows) {\n` +
        indent(
          "    ",
          cols.map((c) =>
            `if (c0 + ${c} < uniforms.n4) { result[(p * rows + m0 + ${r}) * uniforms.n4 + c0 + ${c}] = a${r}_${c}; }`
          ),
        ) + "\n}"
      ),
    )
  }
}
`;
}

/**
 * Output transform A^T m A of each (tile, output vec4) and the epilogue's store; `vb` 4: the
 * output is vec4 (outC % 4 == 0), 1: scalar stores of the real channels.
 */
export function outputTransformSource(epilogue: ConvEpilogue, vb: 1 | 4): string {
  const stores = vb === 4
    ? ["store(px * uniforms.n4 + c4, c4, y);"]
    : range(4).map((j) =>
      `if (4 * c4 + ${j} < uniforms.outC) { store(px * uniforms.outC + 4 * c4 + ${j}, 4 * c4 + ${j}, y.${
        COMPONENTS[j]
      }); }`
    );
  return epilogueSnippet(epilogue, vb) + `
fn main() {
${tileChannelLines("n4")}
${planeIndexLines("n4")}
${perPlane("  ", (p, rc) => `let m${rc} = M[o + ${p} * stride];`)}
${indent("  ", sandwich(AT, AT, 4, (i, j) => `m${i}_${j}`, (i, j) => `y${i}_${j}`, "e"))}
  for (var i = 0; i < 2; i++) {
    let oh = 2 * ty + i;
    for (var j = 0; j < 2; j++) {
      let ow = 2 * tx + j;
      if (oh < uniforms.outH && ow < uniforms.outW) {
        let px = ((n + uniforms.imageOffset) * uniforms.outH + oh) * uniforms.outW + ow;
        var y = y0_0;
        if (i == 0 && j == 1) { y = y0_1; }
        if (i == 1 && j == 0) { y = y1_0; }
        if (i == 1 && j == 1) { y = y1_1; }
${indent("        ", stores)}
      }
    }
  }
}
`;
}

/**
 * dz transform of the filter gradient: A d A^T of each 2x2 dz tile (zeros past Ho, Wo), one
 * invocation per (tile, dz vec4); `vb` 4: dz read as vec4 (outC % 4 == 0).
 */
export function dzTransformSource(vb: 1 | 4): string {
  const r2 = range(2);
  const dims = { H: "outH", W: "outW", C: "outC", C4: "n4" };
  const outside = "h >= uniforms.outH || w >= uniforms.outW";
  return vec4LoaderSource("loadDz", "dz", dims, outside, vb) + `
fn main() {
${tileChannelLines("n4")}
${
    indent(
      "  ",
      r2.flatMap((r) =>
        r2.map((c) =>
          `let d${r}_${c} = loadDz(n + uniforms.imageOffset, 2 * ty + ${r}, 2 * tx + ${c}, c4);`
        )
      ),
    )
  }
${indent("  ", sandwich(A, A, 2, (i, j) => `d${i}_${j}`, (i, j) => `z${i}_${j}`, "e"))}
${planeIndexLines("n4")}
${perPlane("  ", (p, rc) => `result[o + ${p} * stride] = z${rc};`)}
}
`;
}

/**
 * Filter-gradient GEMM: P[s, p] = V[p]^T Z[p] over the tiles of slice s; TU row vec4s (4 TU
 * input channels) x CG column vec4s per invocation, plane = grid z, slice in the flat id.
 */
export function filterGemmSource(TU: number, CG: number, wg: number): string {
  const units = range(TU);
  const cols = range(CG);
  const js = range(4);
  return `
fn main() {
  let p = i32(workgroupId.z);
  let unitTiles = (uniforms.k4 + ${TU - 1}) / ${TU};
  let colTiles = (uniforms.n4 + ${CG - 1}) / ${CG};
  let perSlice = unitTiles * colTiles;
${sliceTileLines("perSlice", wg, CG)}
  let ub = ut * ${TU};
${indent("  ", units.map((u) => `let ku${u} = min(ub + ${u}, uniforms.k4 - 1);`))}
${clampedColumns(CG, "uniforms.n4")}
${
    indent(
      "  ",
      units.flatMap((u) =>
        js.flatMap((j) => cols.map((c) => `var a${u}_${j}_${c} = vec4<f32>(0.0);`))
      ),
    )
  }
  let t0 = s * uniforms.rowsPerSplit;
  let t1 = min(uniforms.tiles, t0 + uniforms.rowsPerSplit);
  var vi = (p * uniforms.tiles + t0) * uniforms.k4;
  var zi = (p * uniforms.tiles + t0) * uniforms.n4;
  for (var t = t0; t < t1; t++) {
${
    indent(
      "    ",
      [
        ...cols.map((c) => `let z${c} = Z[zi + cb${c}];`),
        ...units.flatMap((u) => [
          `let v${u} = V[vi + ku${u}];`,
          ...js.flatMap((j) =>
            cols.map((c) => `a${u}_${j}_${c} += v${u}.${COMPONENTS[j]} * z${c};`)
          ),
        ]),
      ],
    )
  }
    vi += uniforms.k4;
    zi += uniforms.n4;
  }
  let base = ((uniforms.sliceOffset + s) * 16 + p) * 4 * uniforms.k4;
${
    indent(
      "  ",
      units.map((u) =>
        `if (ub + ${u} < uniforms.k4) {\n` +
        indent(
          "    ",
          js.flatMap((j) =>
            cols.map((c) =>
              `if (c0 + ${c} < uniforms.n4) { result[(base + 4 * (ub + ${u}) + ${j}) * uniforms.n4 + c0 + ${c}] = a${u}_${j}_${c}; }`
            )
          ),
        ) + "\n}"
      ),
    )
  }
}
`;
}

/**
 * Filter-gradient output: sums the slices' partials of each (input channel, output vec4), then
 * G^T m G -> the 3x3 taps, stored as scalars (dW is 9 K N elements).
 */
export function filterOutputSource(): string {
  const rc = range(4);
  const r3 = range(3);
  return `
fn main() {
  let id = ${flatId(64)};
  let k = id / uniforms.n4;
  if (k >= uniforms.inC) {
    return;
  }
  let c4 = id - k * uniforms.n4;
  let planeStride = 4 * uniforms.k4 * uniforms.n4;
${indent("  ", rc.flatMap((r) => rc.map((c) => `var m${r}_${c} = vec4<f32>(0.0);`)))}
  var o = k * uniforms.n4 + c4;
  for (var s = 0; s < uniforms.numSplits; s++) {
${perPlane("    ", (p, rc) => `m${rc} += P[o + ${p} * planeStride];`)}
    o += 16 * planeStride;
  }
${indent("  ", sandwich(GT, GT, 4, (i, j) => `m${i}_${j}`, (i, j) => `w${i}_${j}`, "e"))}
  for (var j = 0; j < 4; j++) {
    let co = 4 * c4 + j;
    if (co < uniforms.outC) {
${
    indent(
      "      ",
      r3.flatMap((a) =>
        r3.map((b) =>
          `result[(${a * 3 + b} * uniforms.inC + k) * uniforms.outC + co] = w${a}_${b}[j];`
        )
      ),
    )
  }
    }
  }
}
`;
}
