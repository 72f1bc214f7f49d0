// Fashion-MNIST loading: folder resolution, content validation, the real dataset when installed.

import assert from "node:assert/strict";
import { classCounts } from "../src/data/dataset.ts";
import {
  CLASS_NAMES,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  type LoadOptions,
} from "../src/data/fashion_mnist.ts";
import { idxContentSha256 } from "../src/data/download.ts";
import { encodeIdx, gzip, readIdx, writeIdx } from "../src/data/idx.ts";
import {
  assertDataError,
  fakeBytes,
  HAVE_REAL_DATA,
  REAL_DIR,
  withTempDir,
  writeFakeFashionMnist,
} from "./helpers/data_fixtures.ts";

/** Loads with FASHION_MNIST_DIR unset (or set to `envDir`), restoring it afterwards. */
async function load(opts: LoadOptions, envDir?: string) {
  const saved = Deno.env.get("FASHION_MNIST_DIR");
  if (envDir === undefined) Deno.env.delete("FASHION_MNIST_DIR");
  else Deno.env.set("FASHION_MNIST_DIR", envDir);
  try {
    return await loadFashionMnist({ download: false, ...opts });
  } finally {
    if (saved === undefined) Deno.env.delete("FASHION_MNIST_DIR");
    else Deno.env.set("FASHION_MNIST_DIR", saved);
  }
}

Deno.test("CLASS_NAMES: the ten Fashion-MNIST classes in label order", () => {
  assert.equal(CLASS_NAMES.length, 10);
  assert.equal(CLASS_NAMES[0], "T-shirt/top");
  assert.equal(CLASS_NAMES[9], "Ankle boot");
  assert.ok(Object.isFrozen(CLASS_NAMES));
});

Deno.test("loadFashionMnist reads gz and raw folders with the same content", async () => {
  await withTempDir(async (dir) => {
    const gz = `${dir}/gz`;
    const raw = `${dir}/raw`;
    await Deno.mkdir(gz);
    await Deno.mkdir(raw);
    const paths = await writeFakeFashionMnist(gz, { train: 30, test: 12, seed: 9 });
    await writeFakeFashionMnist(raw, { train: 30, test: 12, seed: 9, gz: false });
    const logs: string[] = [];
    const a = await load({ dataDir: gz, log: (m) => logs.push(m) });
    const b = await load({ dataDir: raw });
    assert.equal(a.dir, gz);
    assert.equal(a.train.count, 30);
    assert.equal(a.test.count, 12);
    assert.equal(a.train.images.length, 30 * 784);
    assert.deepEqual(a.train.images, (await readIdx(paths.trainImages)).data);
    assert.deepEqual(a.test.labels, (await readIdx(paths.testLabels)).data);
    assert.deepEqual(a.train, b.train);
    assert.deepEqual(a.test, b.test);
    assert.match(logs.join("\n"), /30 train \+ 12 test images from .*gz/);
  });
});

Deno.test("loadFashionMnist: --data beats FASHION_MNIST_DIR, which beats the search folders", async () => {
  await withTempDir(async (dir) => {
    for (const [name, train] of [["a", 3], ["b", 4], ["c", 5]] as const) {
      await Deno.mkdir(`${dir}/${name}`);
      await writeFakeFashionMnist(`${dir}/${name}`, { train, test: 2 });
    }
    const searchDirs = [`${dir}/missing`, `${dir}/c`];
    assert.equal((await load({ dataDir: `${dir}/a`, searchDirs }, `${dir}/b`)).train.count, 3);
    assert.equal((await load({ searchDirs }, `${dir}/b`)).train.count, 4);
    assert.equal((await load({ searchDirs })).train.count, 5);
    // An explicit folder never falls back, even when a search folder has the data.
    await assertDataError(load({ dataDir: `${dir}/x`, searchDirs }), `${dir}/x`, /not found/);
    await assertDataError(load({ searchDirs }, `${dir}/y`), `${dir}/y`, /not found/);
  });
});

Deno.test("loadFashionMnist: missing files are listed, folder named", async () => {
  await withTempDir(async (dir) => {
    const paths = await writeFakeFashionMnist(dir, { train: 3, test: 2 });
    await Deno.remove(paths.testLabels);
    await Deno.remove(paths.trainImages);
    await assertDataError(
      load({ dataDir: dir }),
      dir,
      /missing Fashion-MNIST file\(s\): train-images-idx3-ubyte\[\.gz\], t10k-labels-idx1-ubyte\[\.gz\]$/,
    );
  });
});

Deno.test("loadFashionMnist: unreadable folder, or a file given as the folder", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/plain.txt`;
    await Deno.writeTextFile(file, "not a folder");
    await assertDataError(load({ dataDir: file }), file, /is a file, not a folder$/);
  });
});

// Root reads a chmod-000 folder anyway: the case cannot be exercised then, so it is ignored.
const IS_ROOT = Deno.uid() === 0;
if (IS_ROOT) {
  console.log("ignored: chmod-000 folder case (running as root: permissions do not block reads)");
}
Deno.test({
  name: "loadFashionMnist: a folder without read permission is named in the error",
  ignore: IS_ROOT,
  fn: async () => {
    await withTempDir(async (dir) => {
      const locked = `${dir}/locked`;
      await Deno.mkdir(locked);
      await writeFakeFashionMnist(locked, { train: 2, test: 2 });
      await Deno.chmod(locked, 0o000);
      await assertDataError(load({ dataDir: locked }), locked, /permission denied/);
    });
  },
});

Deno.test("loadFashionMnist: image/label count mismatch names both files", async () => {
  await withTempDir(async (dir) => {
    const paths = await writeFakeFashionMnist(dir, { train: 6, test: 2 });
    await writeIdx(paths.trainLabels, { dims: [5], data: fakeBytes(5, 2, 10) });
    const e = await assertDataError(load({ dataDir: dir }), paths.trainLabels, /has 5 labels/);
    assert.match(e.message, new RegExp(`but ${paths.trainImages} has 6 images$`));
  });
});

Deno.test("loadFashionMnist: a label outside 0..9", async () => {
  await withTempDir(async (dir) => {
    const paths = await writeFakeFashionMnist(dir, { train: 4, test: 3 });
    await writeIdx(paths.testLabels, { dims: [3], data: new Uint8Array([9, 0, 10]) });
    await assertDataError(
      load({ dataDir: dir }),
      paths.testLabels,
      /label 10 at index 2 is outside 0\.\.9$/,
    );
  });
});

Deno.test("loadFashionMnist: wrong magic (labels file in place of images), wrong image size", async () => {
  await withTempDir(async (dir) => {
    const paths = await writeFakeFashionMnist(dir, { train: 4, test: 3 });
    await Deno.copyFile(paths.testLabels, paths.testImages);
    await assertDataError(
      load({ dataDir: dir }),
      paths.testImages,
      /expected an images file \(magic 2051, 3 dims\), got 1 dims$/,
    );
    await Deno.writeFile(
      paths.testImages,
      await gzip(encodeIdx({ dims: [3, 32, 32], data: fakeBytes(3 * 1024, 1) })),
    );
    await assertDataError(
      load({ dataDir: dir }),
      paths.testImages,
      /images are 32x32, expected 28x28$/,
    );
  });
});

Deno.test("loadFashionMnist offline with no data names the three ways to provide it", async () => {
  await withTempDir(async (dir) => {
    const opts = { searchDirs: [`${dir}/none`], downloadDir: `${dir}/dl` };
    const e = await assertDataError(load(opts), `${dir}/dl`, /no Fashion-MNIST data found/);
    for (const hint of ["--data DIR", "FASHION_MNIST_DIR", "dataset-fashion-mnist", "download"]) {
      assert.ok(e.message.includes(hint), `mentions ${hint}: ${e.message}`);
    }
    // With downloading allowed but an unreachable mirror, the reason is given too.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    const failed = await assertDataError(
      loadFashionMnist({ ...opts, download: true, mirror: `http://127.0.0.1:${port}/` }),
      `${dir}/dl`,
      /download failed: .*127\.0\.0\.1.*check the network\)$/,
    );
    assert.ok(failed.message.includes("--data DIR"));
  });
});

Deno.test({
  name: "real Fashion-MNIST: 60000/10000 images, 6000/1000 per class, known digests",
  ignore: !HAVE_REAL_DATA,
  async fn() {
    const data = await load({ dataDir: REAL_DIR });
    assert.equal(data.train.count, 60000);
    assert.equal(data.test.count, 10000);
    assert.equal(data.train.images.length, 60000 * 784);
    assert.deepEqual(classCounts(data.train.labels), new Array(10).fill(6000));
    assert.deepEqual(classCounts(data.test.labels), new Array(10).fill(1000));
    for (const { base, sha256 } of Object.values(FASHION_MNIST_FILES)) {
      const gz = await Deno.readFile(`${REAL_DIR}/${base}.gz`);
      assert.equal(await idxContentSha256(gz, `${base}.gz`), sha256, base);
    }
  },
});
