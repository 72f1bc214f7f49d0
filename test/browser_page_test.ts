// The classifier page in real headless Chromium (DevTools protocol, no DOM mock): it loads without
// console errors, classifies a PNG like `deno task predict` does (same top-1, probabilities within
// 1e-4), shows a message for a broken or oversized image, steps through test-set samples, and
// falls back to tfjs's CPU backend (saying so) when the browser has no WebGPU.
// Skipped, with the reason printed, where Chromium is not installed.

import assert from "node:assert/strict";
import { CLASS_NAMES } from "../src/data/fashion_mnist.ts";
import { loadInputs, predictImages } from "../src/eval/predict.ts";
import { loadModelForInference } from "../src/model/checkpoint.ts";
import { type RunningServer, startServer } from "../src/serve/server.ts";
import { MAX_FILE_BYTES } from "../src/serve/page/classifier.ts";
import { initTf } from "../src/tf/setup.ts";
import { Browser, chromiumMissing } from "./browser_cdp.ts";
import { greyPng, pngDeclaring, writeUntrainedRun } from "./browser_fixtures.ts";
import { fmnist } from "./helpers/cli.ts";

const missing = chromiumMissing();
if (missing) console.log(`browser_page_test: skipped: ${missing}`);

/** A dark garment-like blob on a light 60x45 background: padded, resized and inverted. */
function testImage(): Uint8Array {
  const w = 60, h = 45;
  const px = new Uint8Array(w * h).fill(235);
  for (let y = 6; y < 40; y++) {
    for (let x = 0; x < w; x++) {
      const half = 8 + (y < 16 ? 14 : 6) + ((x * 7 + y * 3) % 5);
      if (Math.abs(x - 30) < half) px[y * w + x] = 40 + ((x * 13 + y * 5) % 60);
    }
  }
  return greyPng(w, h, px);
}

interface PageResult {
  error: string | null;
  source?: string;
  probabilities?: number[];
  top1?: string;
  errorShown: boolean;
  outputShown: boolean;
}

/** Classifies the file `path` through the page's file input; returns what the page shows. */
async function classifyFile(b: Browser, path: string): Promise<PageResult> {
  await b.setInputFile("#file", path);
  return await b.eval<PageResult>(`(async () => {
    await new Promise((r) => setTimeout(r, 0));
    await fmnist.idle;
    return {
      error: fmnist.error,
      source: fmnist.last?.source,
      probabilities: fmnist.last?.probabilities,
      top1: fmnist.last?.ranked[0].name,
      errorShown: !document.getElementById("error").hidden,
      outputShown: !document.getElementById("output").hidden,
    };
  })()`);
}

function assertSameAsPredict(r: PageResult, expected: number[], label: string) {
  assert.equal(r.error, null, `${label}: ${r.error}`);
  const best = expected.indexOf(Math.max(...expected));
  assert.equal(r.top1, CLASS_NAMES[best], label);
  const diffs = expected.map((p, i) => Math.abs(p - r.probabilities![i]));
  assert.ok(Math.max(...diffs) <= 1e-4, `${label}: |dp| ${Math.max(...diffs)} > 1e-4`);
  console.log(
    `${label}: top-1 ${r.top1}, max |dp| vs predict ${Math.max(...diffs).toExponential(2)}`,
  );
}

/**
 * Opens the served page in a fresh headless Chromium (WebGPU on or off), waits until it is ready,
 * runs `fn` with the backend it reports and its status line, then asserts no console errors.
 */
async function withPage(
  url: string,
  webgpu: boolean,
  fn: (
    b: Browser,
    backend: { backend: string; adapter?: string; fallback?: string },
    status: string,
  ) => Promise<void>,
): Promise<void> {
  const b = await Browser.launch({ webgpu });
  try {
    await b.open(url);
    const ready = await b.eval<{ backend: { backend: string; adapter?: string } }>(
      "fmnist.ready",
    );
    const status = await b.eval<string>(`document.getElementById("backend").textContent`);
    await fn(b, ready.backend, status);
    assert.deepEqual(b.errors(), [], "console errors");
  } finally {
    await b.close();
  }
}

Deno.test({
  name: "page: classifies in headless Chromium on WebGPU and on the CPU fallback, like predict",
  ignore: missing !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "fmnist-page-" });
    let server: RunningServer | undefined;
    try {
      await writeUntrainedRun(dir);
      const image = `${dir}/garment.png`;
      await Deno.writeFile(image, testImage());
      const broken = `${dir}/broken.png`;
      const bytes = testImage();
      await Deno.writeFile(broken, bytes.slice(0, 60)); // signature and IHDR, data cut off
      const bomb = `${dir}/bomb.png`;
      await Deno.writeFile(bomb, pngDeclaring(30000, 30000));
      const huge = `${dir}/huge.png`; // a valid start, then padding past the page's file limit
      const hugeBytes = new Uint8Array(MAX_FILE_BYTES + 1);
      hugeBytes.set(bytes);
      await Deno.writeFile(huge, hugeBytes);

      // What `deno task predict --run DIR garment.png` computes (same functions, all 10 classes),
      // on Deno's WebGPU (wgpu), and the command's own printed top-1.
      const images = await loadInputs([image]);
      await initTf("webgpu");
      const { model } = await loadModelForInference(dir);
      const [pred] = await predictImages(model, images, 10);
      model.dispose();
      const expected = new Array(10).fill(0);
      for (const r of pred.top) expected[r.label] = r.p;
      const { stdout: printed } = await fmnist("predict", "--run", dir, image);
      assert.match(printed, new RegExp(`1\\. ${pred.top[0].name.replace("/", "\\/")}\\s`));

      server = await startServer({ run: dir, port: 0 });

      await t.step(
        "WebGPU: loads cleanly, PNG as predict, a JPEG, messages for bad images",
        () =>
          withPage(server!.url, true, async (b, backend, status) => {
            assert.equal(backend.backend, "webgpu");
            console.log(`page adapter: ${backend.adapter}`);
            assert.match(status, /Running on WebGPU/);
            assertSameAsPredict(await classifyFile(b, image), expected, "webgpu page");
            const bad = await classifyFile(b, broken);
            assert.match(bad.error ?? "", /broken\.png: corrupt PNG/);
            assert.ok(bad.errorShown && !bad.outputShown, "the message replaces the result");
            const big = await classifyFile(b, bomb);
            assert.match(big.error ?? "", /bomb\.png: image declares 30000x30000 pixels/);
            const tooLong = await classifyFile(b, huge);
            assert.match(tooLong.error ?? "", /huge\.png: 20\.0 MB, over the 20 MB limit/);
            // A JPEG made by the browser's own encoder (no JPEG encoder in our dependencies).
            const jpeg = `${dir}/drawn.jpg`;
            const b64 = await b.eval<string>(`(async () => {
            const c = new OffscreenCanvas(50, 70);
            const g = c.getContext("2d");
            g.fillStyle = "#eee"; g.fillRect(0, 0, 50, 70);
            g.fillStyle = "#222"; g.fillRect(12, 8, 26, 54);
            const blob = await c.convertToBlob({ type: "image/jpeg", quality: 0.9 });
            const bytes = new Uint8Array(await blob.arrayBuffer());
            return btoa(String.fromCharCode(...bytes));
          })()`);
            await Deno.writeFile(jpeg, Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)));
            const fromJpeg = await classifyFile(b, jpeg);
            assert.equal(fromJpeg.error, null, fromJpeg.error ?? "");
            assert.equal(fromJpeg.source, "drawn.jpg");
            assert.ok(Math.abs(fromJpeg.probabilities!.reduce((a, p) => a + p, 0) - 1) < 1e-4);
            const sample = await b.eval<{ error: string | null; source: string }>(`(async () => {
            document.getElementById("next").click();
            await fmnist.idle;
            return { error: fmnist.error, source: fmnist.last?.source };
          })()`);
            assert.equal(sample.error, null);
            assert.match(sample.source ?? "", /^test sample 0 \(true class: /);
          }),
      );

      await t.step(
        "no WebGPU: CPU backend, said on the page, same result",
        () =>
          withPage(server!.url, false, async (b, backend, status) => {
            assert.equal(backend.backend, "cpu");
            assert.match(status, /tfjs CPU backend.*WebGPU/);
            assertSameAsPredict(await classifyFile(b, image), expected, "cpu-fallback page");
          }),
      );
    } finally {
      await server?.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
