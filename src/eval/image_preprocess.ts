// Turning user images into Fashion-MNIST-like 28x28 inputs: the one preprocessing module shared
// by `deno task predict` (src/eval/image_input.ts) and the browser page (src/serve/page/app.ts).
//
// Fashion-MNIST images are a light garment on a black background, centred and scaled so the
// garment fills the square. Photos and drawings usually show a dark garment on a light background,
// so each image goes through:
//  1. grey by luminance, Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as PIL's "L" mode);
//     transparent pixels are composited over white first, as image viewers show them;
//  2. background = mean of the border pixels (the outermost row/column on each side);
//  3. padding to a square with that background colour, so the aspect ratio is kept;
//  4. resizing to 28x28: area averaging when shrinking (each output pixel is the mean of the
//     source area it covers), bilinear interpolation when enlarging;
//  5. inversion (255 - v) when the background is light (border mean > 127.5), so the garment is
//     light on dark as in training.
// Size limit: an image whose header declares more than MAX_IMAGE_PIXELS pixels or a side over
// MAX_IMAGE_SIDE is refused before decoding. Measured before the limit: a 0.9 MB PNG declaring
// 30000x30000 took predict 26 s and 7 GB of memory. At the limit the padded square holds at most
// 8192^2 float32 values (268 MB).

import { convertIndexedToRgb, decode as decodePng, hasPngSignature } from "fast-png";
import { UsageError } from "../errors.ts";

export { hasPngSignature };

/** Most pixels (width x height) an input image may declare: 40 MP, e.g. 8192 x 4880. */
export const MAX_IMAGE_PIXELS = 40_000_000;
/** Longest side an input image may declare (the square it is padded to is side^2). */
export const MAX_IMAGE_SIDE = 8192;

/** Throws a UsageError naming the file when declared dimensions exceed the limits. */
export function checkDeclaredSize(width: number, height: number, path: string): void {
  if (!(width > 0 && height > 0)) {
    throw new UsageError(`${path}: image declares an empty size ${width}x${height}`);
  }
  if (width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || width * height > MAX_IMAGE_PIXELS) {
    throw new UsageError(
      `${path}: image declares ${width}x${height} pixels, over the limit of ` +
        `${MAX_IMAGE_SIDE} per side and ${MAX_IMAGE_PIXELS / 1e6} megapixels; scale it down first`,
    );
  }
}

/** Width and height from a PNG's IHDR chunk (bytes 16..23), or null when it is cut short. */
export function pngDimensions(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

/** Whether the bytes start with a JPEG SOI marker. */
export function hasJpegSignature(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * Width and height from a JPEG's first start-of-frame segment (SOF0..SOF15 except DHT, JPG,
 * DAC), walking the marker segments; null when no frame header is found.
 */
export function jpegDimensions(bytes: Uint8Array): { width: number; height: number } | null {
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1];
    if (marker === 0xff) { // fill byte
      i++;
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2; // markers without a length
      continue;
    }
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
      marker !== 0xcc;
    if (isSof) {
      if (i + 9 > bytes.length) return null;
      return {
        height: (bytes[i + 5] << 8) | bytes[i + 6],
        width: (bytes[i + 7] << 8) | bytes[i + 8],
      };
    }
    if (marker === 0xda || length < 2) return null; // scan data before any frame header
    i += 2 + length;
  }
  return null;
}

export const SIZE = 28;

export interface GrayImage {
  width: number;
  height: number;
  /** Row-major luminance in [0, 255]. */
  data: Float32Array;
}

export interface PreparedImage {
  /** File name, or `file[i]` for the i-th image of an IDX file. */
  source: string;
  /** 28x28 bytes, light garment on black. */
  pixels: Uint8Array;
  /** Preprocessing notes for the user ("inverted", "resized from 300x400"). */
  notes: string[];
}

/**
 * Decodes PNG bytes to luminance (any bit depth, grey/RGB/palette, with or without alpha).
 * The declared size is checked against the limits first.
 */
export function pngToGray(bytes: Uint8Array, path = "image"): GrayImage {
  const dims = pngDimensions(bytes);
  if (dims) checkDeclaredSize(dims.width, dims.height, path);
  let png;
  try {
    png = decodePng(bytes);
  } catch (e) {
    throw new UsageError(`${path}: corrupt PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  let data = png.data as ArrayLike<number>;
  let channels = png.channels;
  let max = png.depth === 16 ? 65535 : 255;
  if (png.palette) {
    data = convertIndexedToRgb(png);
    channels = data.length / (width * height);
    max = 255;
  } else if (png.depth < 8) {
    data = unpackBits(png.data as Uint8Array, width, height, png.depth, channels);
    max = (1 << png.depth) - 1;
  }
  if (data.length < width * height * channels) {
    throw new UsageError(`${path}: PNG data is shorter than ${width}x${height}x${channels}`);
  }
  return samplesToGray(data, width, height, channels, max);
}

/**
 * Luminance of interleaved samples (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA channels, each in
 * [0, max]), alpha composited over white: step 1 above. The page feeds canvas RGBA (JPEG) here.
 */
export function samplesToGray(
  data: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  max = 255,
): GrayImage {
  const out = new Float32Array(width * height);
  const hasAlpha = channels === 2 || channels === 4;
  for (let i = 0; i < width * height; i++) {
    const o = i * channels;
    const y = channels >= 3 ? 0.299 * data[o] + 0.587 * data[o + 1] + 0.114 * data[o + 2] : data[o];
    const alpha = hasAlpha ? data[o + channels - 1] / max : 1;
    out[i] = (alpha * y / max + (1 - alpha)) * 255;
  }
  return { width, height, data: out };
}

/** Unpacks 1/2/4-bit samples (rows padded to whole bytes) to one value per sample. */
function unpackBits(
  packed: Uint8Array,
  width: number,
  height: number,
  depth: number,
  channels: number,
): Uint8Array {
  const perRow = width * channels;
  const rowBytes = Math.ceil(perRow * depth / 8);
  const out = new Uint8Array(perRow * height);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < perRow; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)];
      out[y * perRow + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Mean of the outermost pixel ring: the background colour estimate. */
export function borderMean(img: GrayImage): number {
  const { width: w, height: h, data } = img;
  let sum = 0, count = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y === 0 || y === h - 1 || x === 0 || x === w - 1) {
        sum += data[y * w + x];
        count++;
      }
    }
  }
  return count === 0 ? 0 : sum / count;
}

/** Pads to a square (centred) with the value `fill`. */
export function padToSquare(img: GrayImage, fill: number): GrayImage {
  const size = Math.max(img.width, img.height);
  if (img.width === img.height) return img;
  const data = new Float32Array(size * size).fill(fill);
  const x0 = Math.floor((size - img.width) / 2), y0 = Math.floor((size - img.height) / 2);
  for (let y = 0; y < img.height; y++) {
    data.set(img.data.subarray(y * img.width, (y + 1) * img.width), (y + y0) * size + x0);
  }
  return { width: size, height: size, data };
}

/** Per output index, the source indices and weights (summing to 1) along one axis. */
function axisWeights(inSize: number, outSize: number): { idx: number[]; w: number[] }[] {
  const scale = inSize / outSize;
  return Array.from({ length: outSize }, (_, o) => {
    const idx: number[] = [], w: number[] = [];
    if (scale >= 1) {
      // Area: the source interval [o*scale, (o+1)*scale) with fractional end pixels.
      const start = o * scale, end = (o + 1) * scale;
      for (let i = Math.floor(start); i < Math.min(inSize, Math.ceil(end)); i++) {
        const cover = Math.min(end, i + 1) - Math.max(start, i);
        if (cover > 1e-9) {
          idx.push(i);
          w.push(cover / scale);
        }
      }
    } else {
      // Bilinear with pixel centres aligned (as tf.image.resizeBilinear with halfPixelCenters).
      const c = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), inSize - 1);
      const i0 = Math.floor(c), i1 = Math.min(i0 + 1, inSize - 1), f = c - i0;
      idx.push(i0, i1);
      w.push(1 - f, f);
    }
    return { idx, w };
  });
}

/** Separable resize: area averaging when shrinking, bilinear when enlarging. */
export function resize(img: GrayImage, outW: number, outH: number): GrayImage {
  const wx = axisWeights(img.width, outW), wy = axisWeights(img.height, outH);
  const tmp = new Float32Array(outW * img.height);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < outW; x++) {
      let s = 0;
      const { idx, w } = wx[x];
      for (let k = 0; k < idx.length; k++) s += w[k] * img.data[y * img.width + idx[k]];
      tmp[y * outW + x] = s;
    }
  }
  const data = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const { idx, w } = wy[y];
    for (let x = 0; x < outW; x++) {
      let s = 0;
      for (let k = 0; k < idx.length; k++) s += w[k] * tmp[idx[k] * outW + x];
      data[y * outW + x] = s;
    }
  }
  return { width: outW, height: outH, data };
}

/** Steps 2-5 of the pipeline above: background, square, 28x28, inversion. */
export function toFashionMnist(img: GrayImage): { pixels: Uint8Array; notes: string[] } {
  const notes: string[] = [];
  const background = borderMean(img);
  const square = padToSquare(img, background);
  if (img.width !== img.height) notes.push(`padded ${img.width}x${img.height} to square`);
  const small = square.width === SIZE ? square : resize(square, SIZE, SIZE);
  if (square.width !== SIZE) notes.push(`resized from ${square.width}x${square.height}`);
  const invert = background > 127.5;
  if (invert) notes.push(`inverted (light background, border mean ${background.toFixed(0)})`);
  const pixels = new Uint8Array(SIZE * SIZE);
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.round(small.data[i]);
    pixels[i] = invert ? 255 - v : v; // Uint8Array clamps into [0, 255]
  }
  return { pixels, notes };
}
