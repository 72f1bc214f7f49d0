// Float64 reference of the Winograd F(2x2, 3x3) convolution (winograd_geometry.ts says how
// each view is built), step by step as the kernels do it: transforms, per-plane products summed
// over the reduction, output transform. It is not the oracle of the kernels' results (the direct
// references are: conv2dRef, convBackpropRef); it checks the algorithm and its matrices against
// them, and with `abs` (every matrix entry and every input replaced by its absolute value) it
// gives the magnitude S behind each output element that the rounding-error bound needs:
//
//   |computed - exact| <= gamma(k) * S,   gamma(k) = k u / (1 - k u),  u = 2^-24 (float32)
//
// where k bounds the number of roundings on any path from an input to the output (a sum of
// products evaluated in any order is within gamma(k) * (the same sum of absolute values) when
// no term passes through more than k roundings). roundingDepth() counts them per view.

import type { ConvGeometry } from "./geometry.ts";
import { dataGeometry, winogradTiles } from "./winograd_geometry.ts";

type Mat = readonly (readonly number[])[];

/** Input transform B^T (4x4): entries 0, +-1, two per row. */
export const BT: Mat = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]];
/** Filter transform G (4x3): entries 0, 1, +-1/2. */
export const G: Mat = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
/** Output transform A^T (2x4): entries 0, +-1, three per row. */
export const AT: Mat = [[1, 1, 1, 0], [0, 1, -1, -1]];

const transpose = (m: Mat): number[][] => m[0].map((_, j) => m.map((row) => row[j]));
const absMat = (m: Mat): number[][] => m.map((row) => row.map(Math.abs));

/** L X R for small dense matrices (X given as rows). */
function sandwich(l: Mat, x: Mat, r: Mat): number[][] {
  const lx = l.map((row) => x[0].map((_, j) => row.reduce((s, v, k) => s + v * x[k][j], 0)));
  return lx.map((row) => r[0].map((_, j) => row.reduce((s, v, k) => s + v * r[k][j], 0)));
}

function matrices(abs: boolean) {
  const f = abs ? absMat : (m: Mat) => m.map((r) => [...r]);
  return {
    bt: f(BT),
    b: f(transpose(BT)),
    g: f(G),
    gt: f(transpose(G)),
    at: f(AT),
    a: f(transpose(AT)),
  };
}

const val = (a: ArrayLike<number>, i: number, abs: boolean) => (abs ? Math.abs(a[i]) : a[i]);

/** The 4x4 input patch of tile (n, ty, tx) of channel ci (zeros outside the image). */
function patch(
  x: ArrayLike<number>,
  g: ConvGeometry,
  n: number,
  ty: number,
  tx: number,
  ci: number,
  abs: boolean,
) {
  return [0, 1, 2, 3].map((r) =>
    [0, 1, 2, 3].map((c) => {
      const h = 2 * ty - g.padTop + r, w = 2 * tx - g.padLeft + c;
      if (h < 0 || h >= g.inH || w < 0 || w >= g.inW) return 0;
      return val(x, ((n * g.inH + h) * g.inW + w) * g.inC + ci, abs);
    })
  );
}

/**
 * Calls `f(n, ty, tx, v)` for every 2x2-output tile (n, ty, tx) of x under `g`, with v[ci] the
 * input transform B^T d B of the tile's 4x4 patch of channel ci (the V both views start from).
 */
function forEachTransformedTile(
  x: ArrayLike<number>,
  g: ConvGeometry,
  abs: boolean,
  f: (n: number, ty: number, tx: number, v: number[][][]) => void,
): void {
  const m = matrices(abs);
  const { tilesH, tilesW } = winogradTiles(g);
  for (let n = 0; n < g.batch; n++) {
    for (let ty = 0; ty < tilesH; ty++) {
      for (let tx = 0; tx < tilesW; tx++) {
        f(
          n,
          ty,
          tx,
          [...Array(g.inC)].map((_, ci) => sandwich(m.bt, patch(x, g, n, ty, tx, ci, abs), m.b)),
        );
      }
    }
  }
}

/**
 * Forward z (N, Ho, Wo, Cout) of x (N, H, W, Cin) and a 3x3 filter `filterAt(kh, kw, ci, co)`
 * by F(2x2, 3x3), float64; with `abs`, the magnitude S of each element (see the header).
 */
function forward(
  x: ArrayLike<number>,
  filterAt: (kh: number, kw: number, ci: number, co: number) => number,
  g: ConvGeometry,
  abs: boolean,
): Float64Array {
  const m = matrices(abs);
  const u = [...Array(g.inC)].map((_, ci) =>
    [...Array(g.outC)].map((_, co) => {
      const f = [0, 1, 2].map((kh) => [0, 1, 2].map((kw) => filterAt(kh, kw, ci, co)));
      return sandwich(m.g, abs ? f.map((r) => r.map(Math.abs)) : f, m.gt);
    })
  );
  const out = new Float64Array(g.batch * g.outH * g.outW * g.outC);
  forEachTransformedTile(x, g, abs, (n, ty, tx, v) => {
    for (let co = 0; co < g.outC; co++) {
      const acc = [0, 1, 2, 3].map(() => [0, 0, 0, 0]);
      for (let ci = 0; ci < g.inC; ci++) {
        for (let i = 0; i < 4; i++) {
          for (let j = 0; j < 4; j++) acc[i][j] += u[ci][co][i][j] * v[ci][i][j];
        }
      }
      const y = sandwich(m.at, acc, m.a);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 2; j++) {
          const oh = 2 * ty + i, ow = 2 * tx + j;
          if (oh < g.outH && ow < g.outW) {
            out[((n * g.outH + oh) * g.outW + ow) * g.outC + co] = y[i][j];
          }
        }
      }
    }
  });
  return out;
}

/** z = conv2d(x, filter) by F(2x2, 3x3) (3x3, stride 1); `abs`: the error magnitude S. */
export function winogradForwardRef(
  x: ArrayLike<number>,
  filter: ArrayLike<number>,
  g: ConvGeometry,
  abs = false,
): Float64Array {
  return forward(
    x,
    (kh, kw, ci, co) => val(filter, ((kh * 3 + kw) * g.inC + ci) * g.outC + co, abs),
    g,
    abs,
  );
}

/** dx (N, H, W, Cin) from dz by the forward of dataGeometry with the rotated filter. */
export function winogradBackpropDataRef(
  dz: ArrayLike<number>,
  filter: ArrayLike<number>,
  g: ConvGeometry,
  abs = false,
): Float64Array {
  // In the data view, "ci" is co of the layer and "co" is its ci.
  return forward(
    dz,
    (kh, kw, k, n) => val(filter, (((2 - kh) * 3 + (2 - kw)) * g.inC + n) * g.outC + k, abs),
    dataGeometry(g),
    abs,
  );
}

/** dfilter (3, 3, Cin, Cout) from dz and x by F(3x3, 2x2); `abs`: the error magnitude S. */
export function winogradBackpropFilterRef(
  dz: ArrayLike<number>,
  x: ArrayLike<number>,
  g: ConvGeometry,
  abs = false,
): Float64Array {
  const m = matrices(abs);
  // F(3x3, 2x2): the forward's A^T as the dz transform (A dz A^T), G as the output transform.
  const acc = new Float64Array(16 * g.inC * g.outC);
  forEachTransformedTile(x, g, abs, (n, ty, tx, v) => {
    for (let co = 0; co < g.outC; co++) {
      const d = [0, 1].map((i) =>
        [0, 1].map((j) => {
          const oh = 2 * ty + i, ow = 2 * tx + j;
          if (oh >= g.outH || ow >= g.outW) return 0;
          return val(dz, ((n * g.outH + oh) * g.outW + ow) * g.outC + co, abs);
        })
      );
      const z = sandwich(m.a, d, m.at);
      for (let ci = 0; ci < g.inC; ci++) {
        const base = (ci * g.outC + co) * 16;
        for (let p = 0; p < 16; p++) acc[base + p] += z[p >> 2][p & 3] * v[ci][p >> 2][p & 3];
      }
    }
  });
  const out = new Float64Array(9 * g.inC * g.outC);
  for (let ci = 0; ci < g.inC; ci++) {
    for (let co = 0; co < g.outC; co++) {
      const base = (ci * g.outC + co) * 16;
      const mm = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => acc[base + i * 4 + j]));
      const w = sandwich(m.gt, mm, m.g);
      for (let kh = 0; kh < 3; kh++) {
        for (let kw = 0; kw < 3; kw++) out[((kh * 3 + kw) * g.inC + ci) * g.outC + co] = w[kh][kw];
      }
    }
  }
  return out;
}

/**
 * Roundings on any path from an input to an output element, per view (the k of gamma(k)):
 *   fwd / bwdData: filter transform G g G^T (3 terms per direction: 2 + 2), input transform
 *     B^T d B (2 terms per direction: 1 + 1), the product (1), the sum over the reduction
 *     channels (C - 1, C rounded up to 4: the padding adds exact zeros), the output transform
 *     A^T m A (3 terms per direction: 2 + 2), the epilogue (z * scale + shift: 2): C + 12.
 *   bwdFilter: dz transform A dz A^T (2 terms per direction: 1 + 1), input transform (2), the
 *     product (1), the sum over all tiles in slices plus the sum of the slices (at most
 *     tiles + slices - 1 <= 2 * tiles), the output transform G^T m G (3 terms per direction:
 *     2 + 2): 2 * tiles + 10.
 * Multiplications by 1/2 are exact (no subnormals at these magnitudes).
 */
export function roundingDepth(view: "fwd" | "bwdData" | "bwdFilter", g: ConvGeometry): number {
  if (view === "bwdFilter") return 2 * winogradTiles(g).tiles + 10;
  return (view === "fwd" ? g.inC : g.outC) + 12;
}

/** gamma(k) for float32: k u / (1 - k u), u = 2^-24. */
export function gamma32(k: number): number {
  const u = 2 ** -24;
  return (k * u) / (1 - k * u);
}
