import assert from "node:assert/strict";
import {
  confusionMatrixSpec,
  f1BarSpec,
  imageGridSpec,
  type Sample,
  trainingCurvesSpec,
  upscale,
} from "../src/eval/charts.ts";
import { classificationMetrics } from "../src/eval/metrics.ts";
import { pngSize, renderChart, svgToPng } from "../src/eval/render.ts";
import { decode } from "fast-png";

const NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"];

function assertSvgAndPng(svg: string, png: Uint8Array | null, width: number, height: number) {
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith("</svg>"), "SVG is not closed");
  // PNG signature, IHDR size = 2x the SVG size (render scale), and the pixels decode.
  assert.ok(png, "no PNG renderer");
  assert.deepEqual(pngSize(png), { width: width * 2, height: height * 2 });
  const decoded = decode(png);
  assert.equal(decoded.width, width * 2);
  // Not a blank canvas: some pixel differs from the white background.
  assert.ok(decoded.data.some((v) => v < 200), "PNG is blank");
}

Deno.test("plots: confusion matrix, F1 bars and training curves render to SVG and PNG", async () => {
  const t = [0, 0, 1, 1, 2, 2, 3, 4, 4, 4];
  const p = [0, 1, 1, 1, 2, 4, 3, 4, 4, 2];
  const m = classificationMetrics(t, p, NAMES);
  const cm = await renderChart(confusionMatrixSpec(m.confusion, NAMES, "Confusion matrix"));
  assertSvgAndPng(cm.svg, cm.png, cm.width, cm.height);
  for (const name of NAMES) assert.ok(cm.svg.includes(name), `class ${name} missing`);
  const f1 = await renderChart(f1BarSpec(m.perClass, "Per-class F1"));
  assertSvgAndPng(f1.svg, f1.png, f1.width, f1.height);
  assert.ok(f1.svg.includes(m.perClass[4].f1.toFixed(3)), "F1 value label missing");
  const history = [1, 2, 3].map((epoch) => ({
    epoch,
    loss: 1 / epoch,
    acc: 0.5 + epoch / 10,
    valLoss: epoch === 1 ? null : 1.2 / epoch,
    valAcc: 0.45 + epoch / 10,
    lr: 0.01 / epoch,
  }));
  const curves = await renderChart(trainingCurvesSpec(history, "Training curves"));
  assertSvgAndPng(curves.svg, curves.png, curves.width, curves.height);
  for (const label of ["loss", "accuracy", "learning rate", "validation"]) {
    assert.ok(curves.svg.includes(label), `${label} missing`);
  }
});

Deno.test("plots: image grid embeds each 28x28 image as a PNG data URL", async () => {
  const pixels = new Uint8Array(784).map((_, i) => (i % 28) * 9);
  const samples: Sample[] = [0, 1, 2].map((i) => ({
    pixels,
    index: i,
    trueName: NAMES[i],
    predictedName: NAMES[i + 1],
    confidence: 0.5 + i / 10,
  }));
  const grid = await renderChart(imageGridSpec(samples, "Misclassified", 2));
  assertSvgAndPng(grid.svg, grid.png, grid.width, grid.height);
  assert.equal(grid.svg.match(/<image[^>]+data:image\/png;base64,/g)?.length, 3);
  assert.ok(grid.svg.includes("pred: Pullover 0.60"));
  // Upscaling keeps each source pixel as a 2x2 block.
  const big = upscale(pixels, 28, 2);
  assert.deepEqual([big[0], big[1], big[2], big[56], big[57 * 2]], [0, 0, 9, 0, 9]);
});

Deno.test("plots: malformed SVG is refused by the PNG renderer", async () => {
  await assert.rejects(svgToPng("<svg><g></svg>"));
});
