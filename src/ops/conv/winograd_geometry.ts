// Where Winograd F(2x2, 3x3) applies and how it tiles a convolution (shared by the WGSL dispatch,
// winograd.ts, and the float64 reference, winograd_ref.ts).
//
// Every view is built from one tiling of the forward: output tile (ty, tx) of image n covers
// output pixels (2ty..2ty+1, 2tx..2tx+1) and reads the 4x4 input patch starting at
// (2ty - padTop, 2tx - padLeft) (zeros outside the image):
//   fwd        z = A^T [ sum_ci (G g G^T) . (B^T d B) ] A                          F(2x2, 3x3)
//   bwdData    the forward of dz with the filter rotated by 180 degrees and its channel axes
//              swapped, padded by 2 - pad (dataGeometry below)
//   bwdFilter  dW = G^T [ sum_tiles (A dz_t A^T) . (B^T d_t B) ] G                  F(3x3, 2x2)
//              (the transpose of the forward's bilinear algorithm: the 2x2 dz tile plays the
//              filter, the same 4x4 input patch and input transform, the filter transform G
//              turned into the output transform)

import type { ConvGeometry } from "./geometry.ts";

/** Winograd F(2x2, 3x3) serves 3x3 convolutions at stride 1 (any padding). */
export function winogradApplies(g: ConvGeometry): boolean {
  return g.kH === 3 && g.kW === 3 && g.strideH === 1 && g.strideW === 1;
}

/** Output tiles of 2x2 per image along H and W, and in all (N * tilesH * tilesW). */
export function winogradTiles(g: ConvGeometry): { tilesH: number; tilesW: number; tiles: number } {
  const tilesH = Math.ceil(g.outH / 2);
  const tilesW = Math.ceil(g.outW / 2);
  return { tilesH, tilesW, tiles: g.batch * tilesH * tilesW };
}

/**
 * bwdData as a forward: input dz (N, Ho, Wo, Cout), output dx (N, H, W, Cin), padding 2 - pad
 * (a 3x3 filter at stride 1: dx[ih] = sum_kh dz[ih + padTop - kh] w[kh] = sum_k' dz[ih - (2 -
 * padTop) + k'] w[2 - k']).
 */
export function dataGeometry(g: ConvGeometry): ConvGeometry {
  return {
    ...g,
    inH: g.outH,
    inW: g.outW,
    inC: g.outC,
    outH: g.inH,
    outW: g.inW,
    outC: g.inC,
    padTop: g.kH - 1 - g.padTop,
    padLeft: g.kW - 1 - g.padLeft,
  };
}
