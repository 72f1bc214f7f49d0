// `deno task serve`: what the server serves and refuses (no browser needed), and how the command
// starts and stops. Raw HTTP requests are written by hand for the path tests, because fetch()
// normalises `..` before sending.

import assert from "node:assert/strict";
import { MAX_REQUEST_BODY_BYTES, type RunningServer, startServer } from "../src/serve/server.ts";
import { EMBEDDED_WGSL_GLOBAL } from "../src/ops/backend/wgsl.ts";
import { writeUntrainedRun } from "./browser_fixtures.ts";

/** Sends `request` verbatim over TCP; returns the status code and the body. */
async function rawRequest(
  port: number,
  request: string,
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
    const status = Number(text.split(" ")[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

const get = (port: number, path: string, host = "127.0.0.1") =>
  rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

Deno.test("serve: serves the page, bundle and model only; refuses traversal, uploads, other hosts", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "fmnist-serve-" });
  let server: RunningServer | undefined;
  try {
    await writeUntrainedRun(dir);
    server = await startServer({ run: dir, port: 0 });
    const url = new URL(server.url);
    const port = Number(url.port);
    assert.equal(url.hostname, "127.0.0.1", "binds to loopback by default");

    await t.step("page, bundle (WGSL embedded, no node: imports) and model", async () => {
      const page = await fetch(server!.url);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type")!, /text\/html/);
      assert.match(page.headers.get("content-security-policy")!, /default-src 'self'/);
      assert.match(await page.text(), /<script type="module" src="\/app.js">/);
      const js = await (await fetch(`${server!.url}app.js`)).text();
      assert.ok(js.startsWith(`globalThis["${EMBEDDED_WGSL_GLOBAL}"] = {`), js.slice(0, 80));
      assert.match(js, /bn_relu_apply/);
      assert.doesNotMatch(js, /from\s*"node:/, "the bundle must not import node: modules");
      const meta = await (await fetch(`${server!.url}model/checkpoint.json`)).json();
      const weights = new Uint8Array(
        await (await fetch(`${server!.url}model/weights.bin`)).arrayBuffer(),
      );
      const floats = meta.tensors.reduce(
        (s: number, e: { shape: number[] }) => s + e.shape.reduce((a, b) => a * b, 1),
        0,
      );
      assert.equal(weights.byteLength, 4 * floats, "weights hold exactly the listed tensors");
      assert.equal(meta.optimizer, null, "no optimizer state is served");
      assert.deepEqual(meta.config, {}, "no training configuration is served");
      assert.equal(meta.model, "enhanced");
    });

    await t.step(
      "no listing, nothing outside the table, `..` in every spelling is 404",
      async () => {
        for (
          const path of [
            "/model/",
            "/model",
            "/src/",
            "/kernels/",
            "/deno.json",
            "/../deno.json",
            "/model/../../deno.json",
            "/%2e%2e/deno.json",
            "/%2E%2E%2Fdeno.json",
            "/..%2fdeno.json",
            "/%252e%252e/deno.json",
            "/..\\deno.json",
            "/model/%2e%2e/weights.bin",
            "//etc/passwd",
            "/app.js/",
            "/app.js%00",
            "/kernel-tests.html", // only with --kernel-tests
          ]
        ) {
          const r = await get(port, path);
          assert.equal(r.status, 404, `${path}: ${r.status} ${r.body.slice(0, 60)}`);
        }
        assert.equal((await get(port, "/model/weights.bin")).status, 200);
      },
    );

    await t.step("uploads: over the limit 413 (declared or chunked), otherwise 405", async () => {
      const big = new Uint8Array(MAX_REQUEST_BODY_BYTES + 1);
      const declared = await fetch(server!.url, { method: "POST", body: big });
      assert.equal(declared.status, 413);
      await declared.body?.cancel();
      // Chunked: no Content-Length, the server counts as it reads.
      const stream = new ReadableStream({
        start(c) {
          for (let i = 0; i < 4; i++) c.enqueue(new Uint8Array(MAX_REQUEST_BODY_BYTES / 2));
          c.close();
        },
      });
      const chunked = await fetch(server!.url, { method: "POST", body: stream });
      assert.equal(chunked.status, 413);
      await chunked.body?.cancel();
      const small = await fetch(`${server!.url}model/weights.bin`, { method: "PUT", body: "x" });
      assert.equal(small.status, 405);
      assert.equal(small.headers.get("allow"), "GET, HEAD");
      await small.body?.cancel();
    });

    await t.step("a foreign Host header (DNS rebinding) is refused", async () => {
      const r = await get(port, "/model/weights.bin", "attacker.example");
      assert.equal(r.status, 403);
      assert.equal((await get(port, "/", `localhost:${port}`)).status, 200);
    });
  } finally {
    await server?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve command: prints its URL, stops cleanly on Ctrl-C; a bad --run is one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fmnist-serve-cmd-" });
  try {
    await writeUntrainedRun(dir);
    const main = new URL("../src/main.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "serve", "--run", dir, "--port", "0"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!/serve: http:\/\/127\.0\.0\.1:\d+\//.test(out)) {
      const { done, value } = await reader.read();
      if (done) break;
      out += value;
    }
    const url = out.match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
    const page = await fetch(url);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    child.kill("SIGINT");
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    await child.stderr.cancel();
    assert.equal(status.code, 0, out);
    assert.match(out, /serve: stopped/);
    await assert.rejects(fetch(url), "the port is closed after Ctrl-C");

    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, "serve", "--run", `${dir}/nope`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(bad.stderr).trim();
    assert.equal(bad.code, 2, err);
    assert.equal(err.split("\n").length, 1, err);
    assert.match(err, /nope: no such file or folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
