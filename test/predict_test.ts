import assert from "node:assert/strict";
import { encode } from "fast-png";
import { UsageError } from "../src/errors.ts";
import { loadFashionMnist, PIXELS } from "../src/data/fashion_mnist.ts";
import { limitSplit } from "../src/data/dataset.ts";
import { writeIdx } from "../src/data/idx.ts";
import { nearestCentroidModel } from "./helpers/centroid_model.ts";
import { borderMean, type GrayImage, padToSquare, resize } from "../src/eval/image_input.ts";
import { predictProbabilities } from "../src/eval/inference.ts";
import { argmaxRows } from "../src/eval/metrics.ts";
import { formatPredictions, loadInputs, predictImages } from "../src/eval/predict.ts";
import { initTf } from "../src/tf/setup.ts";
import { LOCAL_DATA_DIR, needsRealData } from "./helpers/data_fixtures.ts";

const gray = (width: number, height: number, values: number[]): GrayImage => ({
  width,
  height,
  data: Float32Array.from(values),
});

Deno.test("image preprocessing: area shrink, bilinear enlarge, border mean, square padding", () => {
  // 4x4 -> 2x2 averages each 2x2 block.
  const img = gray(4, 4, [0, 4, 8, 8, 4, 0, 8, 8, 1, 1, 2, 2, 1, 1, 2, 2]);
  assert.deepEqual([...resize(img, 2, 2).data], [2, 8, 1, 2]);
  // 3 -> 2 (non-integer factor 1.5): [0, 3, 6] -> [(0 + 0.5*3)/1.5, (0.5*3 + 6)/1.5].
  assert.deepEqual([...resize(gray(3, 1, [0, 3, 6]), 2, 1).data], [1, 5]);
  // 2 -> 4 bilinear with half-pixel centres: [0, 8] -> [0, 2, 6, 8].
  assert.deepEqual([...resize(gray(2, 1, [0, 8]), 4, 1).data], [0, 2, 6, 8]);
  // Border of a 3x3: all but the centre.
  assert.equal(borderMean(gray(3, 3, [8, 8, 8, 8, 100, 8, 8, 8, 8])), 8);
  const padded = padToSquare(gray(2, 1, [1, 2]), 9);
  assert.deepEqual([padded.width, padded.height, ...padded.data], [2, 2, 1, 2, 9, 9]);
});

function png(width: number, height: number, data: Uint8Array, channels: number): Uint8Array {
  return encode({ width, height, data, channels, depth: 8 });
}

Deno.test(
  "predict: PNG variants (grey, inverted colour, 3x upscaled, IDX) match direct evaluation",
  {
    ignore: needsRealData(
      "predict: PNG variants (grey, inverted colour, 3x upscaled, IDX) match direct evaluation",
    ),
  },
  async () => {
    await initTf("cpu");
    const data = await loadFashionMnist({ dataDir: LOCAL_DATA_DIR!, download: false });
    const model = nearestCentroidModel(limitSplit(data.train, 3000));
    const test = limitSplit(data.test, 6);
    const dir = await Deno.makeTempDir({ prefix: "fmnist-predict-" });
    try {
      const direct = argmaxRows(await predictProbabilities(model, test), 10);
      const files: string[] = [];
      for (let i = 0; i < test.count; i++) {
        const px = test.images.subarray(i * PIXELS, (i + 1) * PIXELS);
        files.push(`${dir}/grey${i}.png`);
        await Deno.writeFile(files.at(-1)!, png(28, 28, px, 1));
        // Dark garment on white, tinted: R = L + d, G = L, B = L - d * 0.299/0.114 keep luminance L.
        const rgba = new Uint8Array(PIXELS * 4);
        for (let p = 0; p < PIXELS; p++) {
          const l = 255 - px[p];
          const d = Math.floor(Math.min(10, 255 - l, l / 2.7));
          rgba.set([l + d, l, Math.round(l - d * 0.299 / 0.114), 255], p * 4);
        }
        files.push(`${dir}/colour_inverted${i}.png`);
        await Deno.writeFile(files.at(-1)!, png(28, 28, rgba, 4));
        // 3x nearest-neighbour upscale: area averaging brings back the exact pixels.
        const big = new Uint8Array(84 * 84).map((_, q) =>
          px[Math.floor(q / 84 / 3) * 28 + (q % 84) / 3 | 0]
        );
        files.push(`${dir}/big${i}.png`);
        await Deno.writeFile(files.at(-1)!, png(84, 84, big, 1));
      }
      await writeIdx(`${dir}/images.idx.gz`, { dims: [test.count, 28, 28], data: test.images });
      files.push(`${dir}/images.idx.gz`);

      const images = await loadInputs(files);
      assert.equal(images.length, 4 * test.count);
      const preds = await predictImages(model, images);
      const byName = (prefix: string) => preds.filter((p) => p.source.includes(prefix));
      for (const prefix of ["grey", "colour_inverted", "big", "images.idx.gz"]) {
        const got = byName(prefix).map((p) => p.top[0].label);
        assert.deepEqual(got, [...direct], `${prefix}: classes differ from direct evaluation`);
      }
      // The inputs themselves are reproduced exactly (so this is not luck of the classifier).
      for (const img of images) {
        const i = Number(img.source.match(/(\d+)(\.png|\])$/)?.[1]);
        assert.deepEqual(
          img.pixels,
          test.images.subarray(i * PIXELS, (i + 1) * PIXELS),
          img.source,
        );
      }
      assert.ok(
        byName("colour_inverted").every((p) => p.notes.some((n) => n.startsWith("inverted"))),
      );
      assert.ok(byName("grey").every((p) => p.notes.length === 0));
      for (const p of preds) {
        assert.equal(p.top.length, 3);
        assert.ok(p.top[0].p >= p.top[1].p && p.top[1].p >= p.top[2].p);
      }
      const text = formatPredictions(preds.slice(0, 2));
      assert.match(text, /grey0\.png\s+1\. \S.* 0\.\d{3}\s+2\. /);
    } finally {
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("predict: bad inputs give one-line UsageErrors naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fmnist-predict-bad-" });
  try {
    await Deno.writeTextFile(`${dir}/notes.txt`, "hello, not an image");
    await Deno.writeFile(
      `${dir}/broken.png`,
      Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]),
    );
    await writeIdx(`${dir}/labels.idx`, { dims: [3], data: new Uint8Array(3) });
    const cases: [string, RegExp][] = [
      [`${dir}/notes.txt`, /notes\.txt: not a PNG image or IDX image file/],
      [`${dir}/missing.png`, /missing\.png: file not found/],
      [`${dir}/broken.png`, /broken\.png: corrupt PNG/],
      [`${dir}/labels.idx`, /labels\.idx: IDX file has dims \[3\], expected images/],
      [dir, /is a folder/],
    ];
    for (const [path, message] of cases) {
      await assert.rejects(loadInputs([path]), (e: Error) => {
        assert.ok(e instanceof UsageError, `${path}: ${e.constructor.name} ${e.message}`);
        assert.match(e.message, message);
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
