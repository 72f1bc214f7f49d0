// Reading input files for `predict`: PNG images (preprocessed by image_preprocess.ts, the module
// the browser page shares) and IDX image files ([n, 28, 28] unsigned bytes, taken as is: they are
// already in dataset format).

import { UsageError } from "../errors.ts";
import { decodeIdx, gunzipIdxStream } from "../data/idx.ts";
import { hasPngSignature, pngToGray, SIZE, toFashionMnist } from "./image_preprocess.ts";

export {
  borderMean,
  type GrayImage,
  MAX_IMAGE_PIXELS,
  MAX_IMAGE_SIDE,
  padToSquare,
  pngToGray,
  resize,
  SIZE,
  toFashionMnist,
} from "./image_preprocess.ts";

export interface PreparedImage {
  /** File name, or `file[i]` for the i-th image of an IDX file. */
  source: string;
  /** 28x28 bytes, light garment on black. */
  pixels: Uint8Array;
  /** Preprocessing notes for the user ("inverted", "resized from 300x400"). */
  notes: string[];
}

/** Unsigned-byte IDX magic: 0, 0, 0x08, ndims (dims are checked after decoding). */
function looksLikeIdx(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0x08;
}

/**
 * Reads one input file: a PNG (preprocessed as above) or an IDX image file (raw or .gz, taken as
 * is, at most `limit` images). Anything else is a UsageError naming the file.
 */
export async function loadImageFile(path: string, limit = Infinity): Promise<PreparedImage[]> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${path}: file not found`);
    if (e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`${path}: is a folder, expected a PNG or IDX image file`);
    }
    throw new UsageError(`${path}: cannot read (${(e as Error).message})`);
  }
  if (hasPngSignature(bytes)) {
    const { pixels, notes } = toFashionMnist(pngToGray(bytes, path));
    return [{ source: path, pixels, notes }];
  }
  const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (gz || looksLikeIdx(bytes)) {
    const raw = gz ? await gunzipIdxStream(new Blob([bytes]).stream(), path) : bytes;
    const idx = decodeIdx(raw, path);
    const [n, h, w] = idx.dims;
    if (idx.dims.length !== 3 || h !== SIZE || w !== SIZE) {
      throw new UsageError(
        `${path}: IDX file has dims [${idx.dims.join(", ")}], expected images [n, 28, 28]`,
      );
    }
    const count = Math.min(n, limit);
    return Array.from({ length: count }, (_, i) => ({
      source: `${path}[${i}]`,
      pixels: idx.data.slice(i * SIZE * SIZE, (i + 1) * SIZE * SIZE),
      notes: [],
    }));
  }
  throw new UsageError(`${path}: not a PNG image or IDX image file`);
}
