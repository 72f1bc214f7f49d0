// Small synthetic Fashion-MNIST-shaped IDX files for the data tests.

import assert from "node:assert/strict";
import { DataError, writeIdx } from "../../src/data/idx.ts";
import { FASHION_MNIST_FILES } from "../../src/data/fashion_mnist.ts";
import { Rng } from "../../src/random.ts";

export const REAL_DIR = "/usr/share/datasets/fashion-mnist";
export const HAVE_REAL_DATA = (() => {
  try {
    return Deno.statSync(`${REAL_DIR}/train-images-idx3-ubyte.gz`).isFile;
  } catch {
    return false;
  }
})();

/**
 * The real dataset for tests, found as the CLI finds it (FASHION_MNIST_DIR, ./data/fashion-mnist,
 * Debian's folder) but never downloaded: tests touch no network. Null when absent.
 */
export const LOCAL_DATA_DIR: string | null = (() => {
  const env = Deno.env.get("FASHION_MNIST_DIR");
  for (const dir of [env, "data/fashion-mnist", REAL_DIR]) {
    if (!dir) continue;
    for (const f of ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]) {
      try {
        if (Deno.statSync(`${dir}/${f}`).isFile) return dir;
      } catch { /* next */ }
    }
  }
  return null;
})();

/** `ignore` for a test that needs the real data; prints why once per test when it is missing. */
export function needsRealData(test: string): boolean {
  if (LOCAL_DATA_DIR) return false;
  console.log(
    `ignored: ${test} (no Fashion-MNIST: set FASHION_MNIST_DIR or apt install dataset-fashion-mnist)`,
  );
  return true;
}

/** Runs `fn` with a fresh temp folder (named `<prefix>XXXX`), removed afterwards. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  prefix = "fmnist-data-test-",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Deterministic pseudo-random bytes below `bound` (the project's generator, src/random.ts). */
export function fakeBytes(n: number, seed: number, bound = 256): Uint8Array {
  const rng = new Rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng.next() * bound);
  return out;
}

/** Writes the four files with `train`/`test` random 28x28 images; returns their paths. */
export async function writeFakeFashionMnist(
  dir: string,
  opts: { train: number; test: number; gz?: boolean; seed?: number },
): Promise<Record<keyof typeof FASHION_MNIST_FILES, string>> {
  const seed = opts.seed ?? 1;
  const ext = opts.gz === false ? "" : ".gz";
  const path = (k: keyof typeof FASHION_MNIST_FILES) =>
    `${dir}/${FASHION_MNIST_FILES[k].base}${ext}`;
  const paths = {
    trainImages: path("trainImages"),
    trainLabels: path("trainLabels"),
    testImages: path("testImages"),
    testLabels: path("testLabels"),
  };
  await writeIdx(paths.trainImages, {
    dims: [opts.train, 28, 28],
    data: fakeBytes(opts.train * 784, seed),
  });
  await writeIdx(paths.trainLabels, { dims: [opts.train], data: fakeBytes(opts.train, seed, 10) });
  await writeIdx(paths.testImages, {
    dims: [opts.test, 28, 28],
    data: fakeBytes(opts.test * 784, seed + 1),
  });
  await writeIdx(paths.testLabels, { dims: [opts.test], data: fakeBytes(opts.test, seed + 1, 10) });
  return paths;
}

/** Awaits `promise`, expecting a one-line DataError whose message names `path` and matches `re`. */
export async function assertDataError(
  promise: Promise<unknown>,
  path: string,
  re: RegExp,
): Promise<DataError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof DataError, `expected DataError, got ${(e as Error)?.stack ?? e}`);
    assert.ok(e.message.includes(path), `message should name ${path}: ${e.message}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    return e;
  }
  assert.fail(`expected a DataError naming ${path} (${re})`);
}

/** Lists a folder's entries (empty when it does not exist). */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return names.sort();
}
