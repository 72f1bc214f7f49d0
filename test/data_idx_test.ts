// IDX reader/writer: round trips (gz and raw) and one test per kind of bad file.

import assert from "node:assert/strict";
import fc from "fast-check";
import { UsageError } from "../src/errors.ts";
import { DataError, decodeIdx, encodeIdx, gzip, readIdx, writeIdx } from "../src/data/idx.ts";
import { assertDataError, fakeBytes, listDir, withTempDir } from "./helpers/data_fixtures.ts";

const idxArray = fc
  .array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 })
  .chain((dims) =>
    fc.record({
      dims: fc.constant(dims),
      data: fc.uint8Array({
        minLength: dims.reduce((a, b) => a * b, 1),
        maxLength: dims.reduce((a, b) => a * b, 1),
      }),
    })
  );

Deno.test("encodeIdx/decodeIdx round-trip random arrays in memory", () => {
  fc.assert(
    fc.property(idxArray, (arr) => {
      const bytes = encodeIdx(arr);
      assert.equal(bytes.length, 4 + 4 * arr.dims.length + arr.data.length);
      assert.deepEqual(bytes.subarray(0, 4), new Uint8Array([0, 0, 8, arr.dims.length]));
      const back = decodeIdx(bytes, "mem");
      assert.deepEqual(back.dims, arr.dims);
      assert.deepEqual(back.data, arr.data);
    }),
    { seed: 20261125, numRuns: 200 },
  );
});

Deno.test("writeIdx/readIdx round-trip random files, gzip and raw", async () => {
  await withTempDir(async (dir) => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(idxArray, fc.boolean(), async (arr, compressed) => {
        const path = `${dir}/a${n++}-idx${arr.dims.length}-ubyte${compressed ? ".gz" : ""}`;
        await writeIdx(path, arr);
        const head = (await Deno.readFile(path)).subarray(0, 2);
        assert.equal(head[0] === 0x1f && head[1] === 0x8b, compressed, "gzip iff .gz");
        const back = await readIdx(path);
        assert.deepEqual(back.dims, arr.dims);
        assert.deepEqual(back.data, arr.data);
      }),
      { seed: 7, numRuns: 40 },
    );
    assert.ok((await listDir(dir)).every((name) => !name.endsWith(".tmp")), "no temp files left");
  });
});

Deno.test("DataError is a UsageError (one line, exit code 2) naming the file", () => {
  const e = new DataError("some/file.gz", "broken");
  assert.ok(e instanceof UsageError);
  assert.equal(e.message, "some/file.gz: broken");
});

Deno.test("readIdx: wrong magic number", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/images-idx3-ubyte`;
    await Deno.writeFile(path, new Uint8Array([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]));
    await assertDataError(readIdx(path), path, /not an IDX file \(magic number 305419896/);
    await Deno.writeFile(path, new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]));
    await assertDataError(readIdx(path), path, /unsupported IDX dtype 0x0d/);
    await Deno.writeFile(path, new Uint8Array([0, 0, 8, 0]));
    await assertDataError(readIdx(path), path, /0 dimensions/);
  });
});

Deno.test("readIdx: truncated file (raw, gzip, cut header, cut gzip stream)", async () => {
  await withTempDir(async (dir) => {
    const full = encodeIdx({ dims: [5, 28, 28], data: fakeBytes(5 * 784, 3) });
    const cut = full.subarray(0, full.length - 100);
    const raw = `${dir}/cut-idx3-ubyte`;
    await Deno.writeFile(raw, cut);
    const truncated = /truncated: header declares 5x28x28 \(3920 bytes of data\).* only 3820$/;
    await assertDataError(readIdx(raw), raw, truncated);
    const gz = `${dir}/cut-idx3-ubyte.gz`;
    await Deno.writeFile(gz, await gzip(cut));
    await assertDataError(readIdx(gz), gz, truncated);
    await Deno.writeFile(raw, full.subarray(0, 10));
    await assertDataError(readIdx(raw), raw, /truncated IDX header \(10 bytes\)/);
    const zipped = await gzip(full);
    await Deno.writeFile(gz, zipped.subarray(0, zipped.length - 20));
    await assertDataError(readIdx(gz), gz, /corrupt gzip data/);
  });
});

Deno.test("readIdx: header count larger than the data", async () => {
  await withTempDir(async (dir) => {
    const bytes = encodeIdx({ dims: [3, 28, 28], data: fakeBytes(3 * 784, 4) });
    new DataView(bytes.buffer).setUint32(4, 10); // Claim 10 images; 3 are there.
    const path = `${dir}/short-idx3-ubyte.gz`;
    await Deno.writeFile(path, await gzip(bytes));
    await assertDataError(readIdx(path), path, /declares 10x28x28 \(7840 bytes .* only 2352$/);
  });
});

Deno.test("readIdx: more data than the header declares", async () => {
  await withTempDir(async (dir) => {
    const bytes = encodeIdx({ dims: [4], data: new Uint8Array([1, 2, 3, 4]) });
    const path = `${dir}/long-idx1-ubyte`;
    await Deno.writeFile(path, new Uint8Array([...bytes, 5, 6]));
    await assertDataError(readIdx(path), path, /declares 4 \(4 bytes of data\) .* holds more/);
  });
});

Deno.test("readIdx: .gz name but not gzip data", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/labels-idx1-ubyte.gz`;
    await Deno.writeFile(path, encodeIdx({ dims: [2], data: new Uint8Array([1, 2]) }));
    await assertDataError(readIdx(path), path, /ends in \.gz but the file is not gzip-compressed/);
    await Deno.writeFile(path, new Uint8Array([0x1f]));
    await assertDataError(readIdx(path), path, /not gzip-compressed/);
  });
});

Deno.test("readIdx: a header claiming billions of items fails without allocating them", async () => {
  await withTempDir(async (dir) => {
    const bytes = encodeIdx({ dims: [1, 28, 28], data: fakeBytes(784, 5) });
    new DataView(bytes.buffer).setUint32(4, 3_000_000_000);
    const raw = `${dir}/huge-idx3-ubyte`;
    await Deno.writeFile(raw, bytes);
    // 3e9 * 784 bytes could not be allocated at all: getting our DataError (not a RangeError
    // from an allocation) shows the header was checked against the real size first.
    const re = /3000000000x28x28 \(2352000000000 bytes of data\) but the file holds only 784$/;
    await assertDataError(readIdx(raw), raw, re);
    const gz = `${raw}.gz`;
    await Deno.writeFile(gz, await gzip(bytes));
    await assertDataError(readIdx(gz), gz, re);
  });
});

Deno.test("readIdx: gunzip stops once output passes the header's size (gzip bomb)", async () => {
  await withTempDir(async (dir) => {
    const header = encodeIdx({ dims: [1, 28, 28], data: new Uint8Array(784) });
    const bomb = new Uint8Array(16 << 20); // 16 MiB of zeros compress to ~16 KiB.
    bomb.set(header);
    const path = `${dir}/bomb-idx3-ubyte.gz`;
    await Deno.writeFile(path, await gzip(bomb));
    const e = await assertDataError(readIdx(path), path, /holds more \(at least \d+\)$/);
    const seen = Number(e.message.match(/at least (\d+)/)![1]);
    assert.ok(seen < bomb.length / 2, `stopped early: read ${seen} of ${bomb.length} bytes`);
  });
});

Deno.test("readIdx: missing file, folder instead of file", async () => {
  await withTempDir(async (dir) => {
    await assertDataError(readIdx(`${dir}/nope.gz`), `${dir}/nope.gz`, /file not found$/);
    await assertDataError(readIdx(dir), dir, /is a folder, not a file$/);
  });
});

Deno.test("writeIdx leaves no temp file when the folder is missing", async () => {
  await withTempDir(async (dir) => {
    const arr = { dims: [1], data: new Uint8Array([1]) };
    await assert.rejects(writeIdx(`${dir}/missing/x-idx1-ubyte`, arr), Deno.errors.NotFound);
    assert.throws(() => encodeIdx({ dims: [2], data: new Uint8Array(3) }), RangeError);
    assert.deepEqual(await listDir(dir), []);
  });
});
