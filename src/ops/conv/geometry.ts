// Output size and padding of a 2-D NHWC convolution, with tfjs's conventions (so our kernels and
// the stock ops agree element for element): `same` gives out = ceil(in / stride) and puts the
// odd pixel of padding at the bottom/right; `valid` gives out = ceil((in - k + 1) / stride).

import { UsageError } from "../../errors.ts";

export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

export function normalizeStrides(strides: number | [number, number]): [number, number] {
  return typeof strides === "number" ? [strides, strides] : strides;
}

/** x: [N, H, W, Cin], filter: [KH, KW, Cin, Cout]. Throws naming the tensor when shapes disagree. */
export function convGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  strides: number | [number, number],
  pad: "same" | "valid",
): ConvGeometry {
  if (xShape.length !== 4) throw new UsageError(`x must be rank 4 NHWC, got [${xShape}]`);
  if (filterShape.length !== 4) {
    throw new UsageError(`filter must be rank 4 [KH,KW,Cin,Cout], got [${filterShape}]`);
  }
  const [batch, inH, inW, inC] = xShape;
  const [kH, kW, fC, outC] = filterShape;
  if (fC !== inC) {
    throw new UsageError(`filter input channels ${fC} != x channels ${inC} (x [${xShape}])`);
  }
  const [strideH, strideW] = normalizeStrides(strides);
  if (!(strideH >= 1 && strideW >= 1)) throw new UsageError(`strides must be >= 1, got ${strides}`);
  if (pad !== "same" && pad !== "valid") throw new UsageError(`pad must be same|valid, got ${pad}`);
  let outH, outW, padTop, padLeft;
  if (pad === "same") {
    outH = Math.ceil(inH / strideH);
    outW = Math.ceil(inW / strideW);
    padTop = Math.floor(Math.max(0, (outH - 1) * strideH + kH - inH) / 2);
    padLeft = Math.floor(Math.max(0, (outW - 1) * strideW + kW - inW) / 2);
  } else {
    outH = Math.ceil((inH - kH + 1) / strideH);
    outW = Math.ceil((inW - kW + 1) / strideW);
    padTop = 0;
    padLeft = 0;
  }
  if (outH < 1 || outW < 1) {
    throw new UsageError(`filter ${kH}x${kW} is larger than the ${inH}x${inW} input (pad valid)`);
  }
  return { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft };
}

/**
 * Calls `visit` for every (output pixel, filter tap) pair whose input pixel lies inside the image
 * (taps on the zero padding are skipped), in order n, oh, ow, kh, kw: the walk of the host
 * references. Offsets are in elements: zRow of the output pixel's Cout channels, xRow of the
 * input pixel's Cin channels, wTap = (kh·KW + kw)·Cin (channel ci's Cout weights start at
 * (wTap + ci)·Cout).
 */
export function forEachConvTap(
  g: ConvGeometry,
  visit: (zRow: number, xRow: number, wTap: number) => void,
): void {
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW } = g;
  for (let n = 0; n < batch; n++) {
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        const zRow = ((n * outH + oh) * outW + ow) * outC;
        for (let kh = 0; kh < kH; kh++) {
          const ih = oh * g.strideH - g.padTop + kh;
          if (ih < 0 || ih >= inH) continue;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * g.strideW - g.padLeft + kw;
            if (iw < 0 || iw >= inW) continue;
            visit(zRow, ((n * inH + ih) * inW + iw) * inC, (kh * kW + kw) * inC);
          }
        }
      }
    }
  }
}
