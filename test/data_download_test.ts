// Verified downloads from a local Deno.serve mirror: success, digest mismatch, failures mid-way.

import assert from "node:assert/strict";
import { downloadVerified, idxContentSha256, type RemoteFile } from "../src/data/download.ts";
import {
  downloadFashionMnist,
  FASHION_MNIST_FILES,
  loadFashionMnist,
} from "../src/data/fashion_mnist.ts";
import { encodeIdx, gzip } from "../src/data/idx.ts";
import {
  assertDataError,
  HAVE_REAL_DATA,
  listDir,
  REAL_DIR,
  withTempDir,
  writeFakeFashionMnist,
} from "./helpers/data_fixtures.ts";

type Handler = (name: string) => Response | Promise<Response>;

/** Serves `handler(fileName)` on 127.0.0.1 for the duration of `fn(mirrorUrl, requests)`. */
async function withMirror(
  handler: Handler,
  fn: (mirror: string, requests: string[]) => Promise<void>,
): Promise<void> {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const name = new URL(req.url).pathname.slice(1);
    requests.push(name);
    return handler(name);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}/`, requests);
  } finally {
    await server.shutdown();
  }
}

/**
 * A raw HTTP server that promises 1000 bytes and sends 8; then it closes the connection, or with
 * `stall` keeps it open silently until the client gives up.
 */
async function withCutConnection(
  fn: (mirror: string) => Promise<void>,
  stall = false,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      await conn.read(new Uint8Array(4096)); // The request; its content does not matter.
      const head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
      await conn.write(new TextEncoder().encode(head));
      await conn.write(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
      if (stall) await conn.read(new Uint8Array(1)).catch(() => null); // Returns once the client hangs up.
      conn.close();
    }
  })();
  try {
    await fn(`http://127.0.0.1:${listener.addr.port}/`);
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
}

/** Serves files from a folder; 404 for anything else. */
function serveDir(dir: string): Handler {
  return async (name) => {
    try {
      return new Response(await Deno.readFile(`${dir}/${name}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  };
}

/** RemoteFile entries (real digests of the fake files) for a folder written by the fixtures. */
async function remoteFilesFor(dir: string): Promise<RemoteFile[]> {
  return await Promise.all(
    Object.values(FASHION_MNIST_FILES).map(async ({ base }) => {
      const name = `${base}.gz`;
      const bytes = await Deno.readFile(`${dir}/${name}`);
      return { name, sha256: await idxContentSha256(bytes, name), maxBytes: bytes.length };
    }),
  );
}

Deno.test("download: files are fetched, verified, written, then loadable; present ones skipped", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/mirror`;
    const dest = `${dir}/dest`;
    await Deno.mkdir(src);
    await writeFakeFashionMnist(src, { train: 20, test: 8 });
    const files = await remoteFilesFor(src);
    await withMirror(serveDir(src), async (mirror, requests) => {
      const logs: string[] = [];
      await downloadFashionMnist(dest, mirror, (m) => logs.push(m), files);
      assert.deepEqual(await listDir(dest), files.map((f) => f.name).sort());
      for (const f of files) {
        assert.deepEqual(
          await Deno.readFile(`${dest}/${f.name}`),
          await Deno.readFile(`${src}/${f.name}`),
        );
      }
      assert.equal(logs.length, 4);
      const data = await loadFashionMnist({ dataDir: dest });
      assert.equal(data.train.count, 20);
      assert.equal(data.test.count, 8);
      await Deno.remove(`${dest}/${files[1].name}`);
      requests.length = 0;
      await downloadFashionMnist(dest, mirror, () => {}, files);
      assert.deepEqual(requests, [files[1].name]);
    });
  });
});

Deno.test("download: a digest mismatch leaves no file behind", async () => {
  await withTempDir(async (dir) => {
    const other = await gzip(encodeIdx({ dims: [3], data: new Uint8Array([1, 2, 3]) }));
    const file: RemoteFile = {
      name: "t10k-labels-idx1-ubyte.gz",
      sha256: "0".repeat(64),
      maxBytes: 1000,
    };
    await withMirror(() => new Response(other), async (mirror) => {
      const dest = `${dir}/dest`;
      await assertDataError(
        downloadFashionMnist(dest, mirror, () => {}, [file]),
        `${mirror}${file.name}`,
        /SHA-256 mismatch: got [0-9a-f]{64}, expected 0{64}$/,
      );
      assert.deepEqual(await listDir(dest), []);
    });
  });
});

Deno.test("download: a server error, a cut connection or an oversized body leave no file behind", async () => {
  await withTempDir(async (dir) => {
    const dest = `${dir}/dest`;
    const file: RemoteFile = {
      name: "train-labels-idx1-ubyte.gz",
      sha256: "0".repeat(64),
      maxBytes: 1 << 20,
    };
    const url = (mirror: string) => `${mirror}${file.name}`;
    // HTTP error status.
    await withMirror(() => new Response("boom", { status: 500 }), async (mirror) => {
      await assertDataError(
        downloadFashionMnist(dest, mirror, () => {}, [file]),
        url(mirror),
        /HTTP 500/,
      );
    });
    // The connection closes after 8 of the 1000 promised bytes.
    await withCutConnection(async (mirror) => {
      await assertDataError(
        downloadFashionMnist(dest, mirror, () => {}, [file]),
        url(mirror),
        /download (interrupted after 8 bytes|cut off: got 8 of 1000 bytes)/,
      );
    });
    // More bytes than the file can be.
    await withMirror(() => new Response(new Uint8Array(2 << 20)), async (mirror) => {
      await assertDataError(
        downloadFashionMnist(dest, mirror, () => {}, [file]),
        url(mirror),
        /more than the expected 1048576|exceeds the expected 1048576/,
      );
    });
    assert.deepEqual(await listDir(dest), []);
  });
});

Deno.test({
  name:
    "download: loadFashionMnist fetches the real files from a mirror and checks the real digests",
  ignore: !HAVE_REAL_DATA,
  async fn() {
    await withTempDir(async (dir) => {
      const dest = `${dir}/fashion-mnist`;
      const saved = Deno.env.get("FASHION_MNIST_DIR");
      Deno.env.delete("FASHION_MNIST_DIR");
      try {
        await withMirror(serveDir(REAL_DIR), async (mirror) => {
          const data = await loadFashionMnist({ searchDirs: [], downloadDir: dest, mirror });
          assert.equal(data.dir, dest);
          assert.equal(data.train.count, 60000);
          assert.equal(data.test.count, 10000);
        });
      } finally {
        if (saved !== undefined) Deno.env.set("FASHION_MNIST_DIR", saved);
      }
      assert.equal((await listDir(dest)).length, 4);
    });
  },
});

Deno.test("download: a mirror that goes silent is given up, nothing left behind", async () => {
  await withTempDir(async (dir) => {
    const file: RemoteFile = { name: "x-idx1-ubyte.gz", sha256: "0".repeat(64), maxBytes: 1000 };
    await withCutConnection(async (mirror) => {
      await assertDataError(
        downloadVerified(mirror, file, dir, 300),
        `${mirror}${file.name}`,
        /download interrupted after 8 bytes \(no data for 0\.3 s\)$/,
      );
    }, true);
    assert.deepEqual(await listDir(dir), []);
  });
});
