// Fashion-MNIST (Xiao et al. 2017, https://github.com/zalandoresearch/fashion-mnist): 60000
// training and 10000 test 28x28 grey images in 10 classes, as four IDX files.
//
// Where the files come from, first match wins:
//   1. `dataDir` (--data DIR): must hold all four files, no fallback;
//   2. env FASHION_MNIST_DIR: same;
//   3. ./data/fashion-mnist, then /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist);
//   4. a download from the canonical mirror (env FASHION_MNIST_MIRROR overrides it) into
//      ./data/fashion-mnist, digest-verified and written atomically.
// Each file may be gzip-compressed (`.gz`) or raw.

import { downloadVerified, type RemoteFile } from "./download.ts";
import {
  DataError,
  IDX_MAGIC_IMAGES,
  IDX_MAGIC_LABELS,
  type IdxArray,
  readIdx,
  toDataError,
} from "./idx.ts";

export const CLASS_NAMES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const NUM_CLASSES = CLASS_NAMES.length;

export interface Split {
  /** `count * 784` bytes, image after image, each row-major 28x28. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface FashionMnist {
  train: Split;
  test: Split;
  /** The folder the files were read from. */
  dir: string;
}

export const DEFAULT_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
export const LOCAL_DIR = "data/fashion-mnist";
export const SYSTEM_DIR = "/usr/share/datasets/fashion-mnist";

type FileKey = "trainImages" | "trainLabels" | "testImages" | "testLabels";

/**
 * The four files: base name (without .gz) and SHA-256 of the decompressed IDX bytes, computed
 * from Debian's dataset-fashion-mnist (identical content to the upstream release).
 */
export const FASHION_MNIST_FILES: Record<FileKey, { base: string; sha256: string; bytes: number }> =
  {
    trainImages: {
      base: "train-images-idx3-ubyte",
      sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
      bytes: 47040016,
    },
    trainLabels: {
      base: "train-labels-idx1-ubyte",
      sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
      bytes: 60008,
    },
    testImages: {
      base: "t10k-images-idx3-ubyte",
      sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
      bytes: 7840016,
    },
    testLabels: {
      base: "t10k-labels-idx1-ubyte",
      sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
      bytes: 10008,
    },
  };

const FILE_KEYS = Object.keys(FASHION_MNIST_FILES) as FileKey[];

/** The mirror's .gz files; a compressed file can't exceed its content by more than a few KiB. */
export const FASHION_MNIST_REMOTE: RemoteFile[] = FILE_KEYS.map((k) => ({
  name: `${FASHION_MNIST_FILES[k].base}.gz`,
  sha256: FASHION_MNIST_FILES[k].sha256,
  maxBytes: FASHION_MNIST_FILES[k].bytes + 65536,
}));

export interface LoadOptions {
  /** --data DIR: use exactly this folder. */
  dataDir?: string;
  log?: (msg: string) => void;
  /** Allow downloading when no local copy exists (default true). */
  download?: boolean;
  /** Folders tried after dataDir / FASHION_MNIST_DIR (default ./data/fashion-mnist, Debian's). */
  searchDirs?: string[];
  /** Where a download goes (default ./data/fashion-mnist). */
  downloadDir?: string;
  /** Mirror base URL (default env FASHION_MNIST_MIRROR, else the canonical mirror). */
  mirror?: string;
}

/** Finds and loads Fashion-MNIST (see the order at the top of this file). */
export async function loadFashionMnist(opts: LoadOptions = {}): Promise<FashionMnist> {
  const log = opts.log ?? (() => {});
  const explicit = opts.dataDir ?? Deno.env.get("FASHION_MNIST_DIR");
  if (explicit !== undefined && explicit !== "") return await loadFromDir(explicit, log);
  const searchDirs = opts.searchDirs ?? [LOCAL_DIR, SYSTEM_DIR];
  for (const dir of searchDirs) {
    if (await findFiles(dir, true)) return await loadFromDir(dir, log);
  }
  const downloadDir = opts.downloadDir ?? LOCAL_DIR;
  const mirror = opts.mirror ?? Deno.env.get("FASHION_MNIST_MIRROR") ?? DEFAULT_MIRROR;
  let reason = "downloading is switched off";
  if (opts.download ?? true) {
    try {
      await downloadFashionMnist(downloadDir, mirror, log);
      return await loadFromDir(downloadDir, log);
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      reason = `download failed: ${e.message}`;
    }
  }
  throw new DataError(
    downloadDir,
    `no Fashion-MNIST data found (looked in ${searchDirs.join(", ")}; ${reason}). Provide it ` +
      `with --data DIR or FASHION_MNIST_DIR, install Debian's dataset-fashion-mnist ` +
      `(apt install dataset-fashion-mnist), or allow the download from ${mirror} (check the network)`,
  );
}

/** Downloads the files missing from `dir` from `mirror`, each digest-verified. */
export async function downloadFashionMnist(
  dir: string,
  mirror: string,
  log: (msg: string) => void = () => {},
  files: RemoteFile[] = FASHION_MNIST_REMOTE,
): Promise<void> {
  for (const file of files) {
    const base = file.name.replace(/\.gz$/, "");
    if (await exists(`${dir}/${base}.gz`) || await exists(`${dir}/${base}`)) continue;
    log(`downloading ${file.name} from ${mirror} ...`);
    await downloadVerified(mirror, file, dir);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Paths of the four files in `dir` (`.gz` preferred over raw). With `quiet`, returns null when the
 * folder or a file is missing; otherwise throws a DataError naming the folder and what is missing.
 */
async function findFiles(dir: string, quiet: boolean): Promise<Record<FileKey, string> | null> {
  const names = new Set<string>();
  try {
    for await (const entry of Deno.readDir(dir)) names.add(entry.name);
  } catch (e) {
    if (quiet) return null;
    throw toDataError(e, dir, "data folder");
  }
  const found: Partial<Record<FileKey, string>> = {};
  const missing: string[] = [];
  for (const key of FILE_KEYS) {
    const base = FASHION_MNIST_FILES[key].base;
    const name = [`${base}.gz`, base].find((n) => names.has(n));
    if (name) found[key] = `${dir}/${name}`;
    else missing.push(`${base}[.gz]`);
  }
  if (missing.length === 0) return found as Record<FileKey, string>;
  if (quiet) return null;
  throw new DataError(dir, `missing Fashion-MNIST file(s): ${missing.join(", ")}`);
}

/** Loads the four files from `dir`, validating their headers and contents. */
export async function loadFromDir(dir: string, log: (msg: string) => void): Promise<FashionMnist> {
  const start = performance.now();
  const paths = (await findFiles(dir, false))!;
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    FILE_KEYS.map((k) => readIdx(paths[k])),
  );
  const train = toSplit(trainImages, paths.trainImages, trainLabels, paths.trainLabels);
  const test = toSplit(testImages, paths.testImages, testLabels, paths.testLabels);
  const seconds = ((performance.now() - start) / 1000).toFixed(2);
  log(`Fashion-MNIST: ${train.count} train + ${test.count} test images from ${dir} (${seconds} s)`);
  return { train, test, dir };
}

/** Checks an images/labels pair (magic numbers, 28x28, counts, labels 0..9) and joins them. */
export function toSplit(
  images: IdxArray,
  imagesPath: string,
  labels: IdxArray,
  labelsPath: string,
): Split {
  if (images.dims.length !== 3) {
    throw new DataError(
      imagesPath,
      `expected an images file (magic ${IDX_MAGIC_IMAGES}, 3 dims), got ${images.dims.length} dims`,
    );
  }
  if (labels.dims.length !== 1) {
    throw new DataError(
      labelsPath,
      `expected a labels file (magic ${IDX_MAGIC_LABELS}, 1 dim), got ${labels.dims.length} dims`,
    );
  }
  const [count, h, w] = images.dims;
  if (h !== IMAGE_SIZE || w !== IMAGE_SIZE) {
    throw new DataError(imagesPath, `images are ${h}x${w}, expected 28x28`);
  }
  if (labels.dims[0] !== count) {
    throw new DataError(
      labelsPath,
      `has ${labels.dims[0]} labels but ${imagesPath} has ${count} images`,
    );
  }
  const bad = labels.data.findIndex((l) => l >= NUM_CLASSES);
  if (bad >= 0) {
    throw new DataError(labelsPath, `label ${labels.data[bad]} at index ${bad} is outside 0..9`);
  }
  return { images: images.data, labels: labels.data, count };
}
