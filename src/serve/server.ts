// The web server behind `deno task serve`: the classifier page, its bundled JavaScript and the
// chosen run's model, and nothing else.
//
// Every response comes from a fixed table built at start-up, looked up by the exact request path:
// there is no file system access per request, so no directory listing, no path outside the
// table, and `..` in any spelling (raw, %2e%2e, %252e, backslashes) is simply a path that is not
// in the table (404). The model is the run's best checkpoint reduced to the inference weights
// (no optimizer state, no training configuration). Classification happens in the browser, so the
// server accepts no uploads: a request body over MAX_REQUEST_BODY_BYTES is refused with 413
// without being read in full, and any method other than GET/HEAD gets 405. Bound to loopback,
// requests whose Host is not a loopback name get 403 (a DNS-rebinding page cannot read them).

import { readIdx } from "../data/idx.ts";
import { IMAGE_SIZE, LOCAL_DIR, SYSTEM_DIR } from "../data/fashion_mnist.ts";
import { readCheckpoint, resolveCheckpoint } from "../model/checkpoint.ts";
import { bundleForBrowser } from "./bundle.ts";

/** Largest request body the server reads before answering 413 (it takes no uploads). */
export const MAX_REQUEST_BODY_BYTES = 64 * 1024;
/** Test-set images offered by the page's sample browser. */
export const SAMPLE_COUNT = 100;

export interface Asset {
  type: string;
  /** The body, or a builder run on first request (the kernel-test bundle is built lazily). */
  body: Uint8Array | string | (() => Promise<Uint8Array | string>);
}

export interface ServeOptions {
  /** Run folder (or checkpoint path) whose best checkpoint is served. */
  run: string;
  hostname?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Also serve the kernel test page (/kernel-tests.html). */
  kernelTests?: boolean;
  /** Fashion-MNIST folder for the sample browser (default FASHION_MNIST_DIR, ./data, Debian's). */
  dataDir?: string;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  /** Stops accepting connections and waits for open ones to finish. */
  shutdown(): Promise<void>;
  finished: Promise<void>;
}

const PAGE = new URL("./page/", import.meta.url);
const KERNEL_TEST_ENTRY = new URL("../../test/browser_kernels_page.ts", import.meta.url);

/** The route table: exact path -> asset. */
export async function buildAssets(opts: ServeOptions): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const html = await Deno.readTextFile(new URL("index.html", PAGE));
  assets.set("/", { type: "text/html; charset=utf-8", body: html });
  assets.set("/index.html", { type: "text/html; charset=utf-8", body: html });
  assets.set("/style.css", {
    type: "text/css; charset=utf-8",
    body: await Deno.readTextFile(new URL("style.css", PAGE)),
  });
  assets.set("/app.js", {
    type: "text/javascript; charset=utf-8",
    body: await bundleForBrowser(new URL("app.ts", PAGE)),
  });
  const model = await modelAssets(opts.run);
  assets.set("/model/checkpoint.json", { type: "application/json", body: model.json });
  assets.set("/model/weights.bin", { type: "application/octet-stream", body: model.weights });
  const samples = await sampleAssets(opts.dataDir);
  if (samples) assets.set("/samples.bin", { type: "application/octet-stream", body: samples });
  if (opts.kernelTests) {
    assets.set("/kernel-tests.html", {
      type: "text/html; charset=utf-8",
      body: await Deno.readTextFile(new URL("kernel_tests.html", PAGE)),
    });
    assets.set("/kernel-tests.js", {
      type: "text/javascript; charset=utf-8",
      body: () => bundleForBrowser(KERNEL_TEST_ENTRY),
    });
  }
  return assets;
}

/** checkpoint.json reduced to what inference needs, and the model tensors only. */
async function modelAssets(run: string): Promise<{ json: string; weights: Uint8Array }> {
  const { dir } = await resolveCheckpoint(run, "best");
  const ck = await readCheckpoint(dir);
  const tensors = [];
  const parts: Float32Array[] = [];
  let offset = 0;
  for (const t of ck.meta.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    parts.push(ck.weights.subarray(t.offset / 4, t.offset / 4 + n));
    tensors.push({ name: t.name, shape: t.shape, offset });
    offset += 4 * n;
  }
  const weights = new Float32Array(offset / 4);
  let at = 0;
  for (const p of parts) {
    weights.set(p, at);
    at += p.length;
  }
  const { format, model, modelConfig, savedAt } = ck.meta;
  const meta = {
    format,
    model,
    modelConfig,
    tensors,
    optimizer: null,
    config: {},
    state: {},
    savedAt,
  };
  return { json: JSON.stringify(meta), weights: new Uint8Array(weights.buffer) };
}

/** The first SAMPLE_COUNT test images: labels then pixels; null when no test set is found. */
async function sampleAssets(dataDir?: string): Promise<Uint8Array | null> {
  const env = Deno.env.get("FASHION_MNIST_DIR");
  const dirs = dataDir ? [dataDir] : env ? [env] : [LOCAL_DIR, SYSTEM_DIR];
  for (const dir of dirs) {
    try {
      const images = await readIdx(`${dir}/t10k-images-idx3-ubyte.gz`);
      const labels = await readIdx(`${dir}/t10k-labels-idx1-ubyte.gz`);
      const n = Math.min(SAMPLE_COUNT, images.dims[0], labels.dims[0]);
      const px = IMAGE_SIZE * IMAGE_SIZE;
      const out = new Uint8Array(n * (px + 1));
      out.set(labels.data.subarray(0, n), 0);
      out.set(images.data.subarray(0, n * px), n);
      return out;
    } catch {
      // try the next folder
    }
  }
  return null;
}

const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; " +
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; " +
    "base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

function text(status: number, message: string, extra: Record<string, string> = {}): Response {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS, ...extra },
  });
}

/** Reads at most `limit` + 1 bytes of a body; true when it is longer than `limit`. */
async function bodyExceeds(req: Request, limit: number): Promise<boolean> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > limit) return true;
  if (!req.body) return false;
  const reader = req.body.getReader();
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return false;
      total += value.length;
      if (total > limit) return true;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** The request handler over a route table (exported for tests). */
export function makeHandler(
  assets: Map<string, Asset>,
  hostname: string,
): (req: Request) => Promise<Response> {
  const built = new Map<string, Promise<Uint8Array | string>>();
  // Bound to loopback, only loopback names are expected in Host; bound elsewhere (--host), the
  // user has chosen to expose the page and its clients use whatever name reaches the machine.
  const loopbackOnly = LOOPBACK_HOSTS.has(hostname) || hostname === "::1";
  return async (req) => {
    const url = new URL(req.url);
    const host = (req.headers.get("host") ?? "").replace(/:\d+$/, "");
    if (loopbackOnly && !LOOPBACK_HOSTS.has(host)) {
      return text(403, `forbidden: unexpected Host "${host}"`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      if (await bodyExceeds(req, MAX_REQUEST_BODY_BYTES)) {
        return text(413, `request body over ${MAX_REQUEST_BODY_BYTES} bytes refused`, {
          connection: "close",
        });
      }
      return text(405, "method not allowed (this server takes no uploads)", {
        allow: "GET, HEAD",
      });
    }
    // The raw path, not a decoded or normalised one: only exact table entries exist.
    const asset = assets.get(url.pathname);
    if (!asset) return text(404, "not found");
    let body = asset.body;
    if (typeof body === "function") {
      let p = built.get(url.pathname);
      if (!p) {
        p = body();
        built.set(url.pathname, p);
        p.catch(() => built.delete(url.pathname));
      }
      try {
        body = await p;
      } catch (e) {
        return text(500, `could not build ${url.pathname}: ${(e as Error).message}`);
      }
    }
    return new Response(req.method === "HEAD" ? null : body as BodyInit, {
      headers: { "content-type": asset.type, ...SECURITY_HEADERS },
    });
  };
}

/** Builds the assets and listens (127.0.0.1 by default). */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const assets = await buildAssets(opts);
  const handler = makeHandler(assets, hostname);
  let resolveAddr: (a: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((r) => resolveAddr = r);
  const server = Deno.serve({
    hostname,
    port: opts.port ?? 8000,
    onListen: (addr) => resolveAddr(addr as Deno.NetAddr),
  }, handler);
  const addr = await listening;
  const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `http://${shown}:${addr.port}/`,
    shutdown: () => server.shutdown(),
    finished: server.finished,
  };
}
