import assert from "node:assert/strict";
import { suggestions } from "../src/eval/advice.ts";
import { confusionMatrixSpec, f1BarSpec, imageGridSpec } from "../src/eval/charts.ts";
import { classificationMetrics } from "../src/eval/metrics.ts";
import { renderChart } from "../src/eval/render.ts";
import { buildReport, escapeHtml, type ReportChart } from "../src/eval/report.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) console.log(`report_test: ${CHROMIUM} not found; browser checks are skipped`);

const NAMES = ["T-shirt/top", "Trouser", "Shirt"];

async function sampleReport(extraChart?: ReportChart): Promise<string> {
  const t = [0, 0, 0, 1, 1, 2, 2, 2];
  const p = [0, 2, 0, 1, 1, 0, 2, 0];
  const m = classificationMetrics(t, p, NAMES);
  const pixels = new Uint8Array(784).map((_, i) => (i * 3) % 256);
  const charts: ReportChart[] = [
    { id: "cm", title: "Confusion matrix", svg: "" },
    { id: "f1", title: "F1 <per class>", svg: "" },
    { id: "grid", title: "Misclassified", svg: "" },
  ];
  charts[0].svg = (await renderChart(confusionMatrixSpec(m.confusion, NAMES, "cm"))).svg;
  charts[1].svg = (await renderChart(f1BarSpec(m.perClass, "f1"))).svg;
  charts[2].svg = (await renderChart(imageGridSpec([{
    pixels,
    index: 5,
    trueName: "Shirt",
    predictedName: "T-shirt/top",
    confidence: 0.9,
  }], "wrong"))).svg;
  if (extraChart) charts.push(extraChart);
  return buildReport({
    title: "Evaluation: test <run>",
    facts: { "run folder": "runs/x" },
    config: { model: "baseline", epochs: 3, schedule: { kind: "cosine" } },
    metrics: m,
    charts,
    suggestions: suggestions(m),
  });
}

/** Loads the page in headless Chromium; returns the body's data-images-ok ("loaded/total"). */
async function imagesLoaded(html: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fmnist-report-" });
  try {
    await Deno.writeTextFile(`${dir}/report.html`, html);
    const { stdout, success } = await new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        `--user-data-dir=${dir}/profile`,
        "--virtual-time-budget=5000",
        "--dump-dom",
        `file://${dir}/report.html`,
      ],
      stdout: "piped",
      stderr: "null",
      env: { XDG_RUNTIME_DIR: dir },
    }).output();
    assert.ok(success, "chromium failed");
    const dom = new TextDecoder().decode(stdout);
    return dom.match(/<body[^>]*data-images-ok="([^"]*)"/)?.[1] ?? "(not set: script did not run)";
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("report: self-contained page with tables, advice, escaped text", async () => {
  const html = await sampleReport();
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  // Self-contained: no src/href pointing outside the page.
  assert.equal(html.match(/(src|href)="(?!data:|#)/g), null);
  assert.equal(html.match(/<img [^>]*src="data:image\/svg\+xml;base64,/g)?.length, 3);
  assert.ok(html.includes("What to try next"));
  assert.ok(html.includes("F1 &#60;per class&#62;") && !html.includes("<per class>"));
  assert.ok(html.includes("Shirt") && html.includes("macro avg"));
  assert.ok(html.includes('{"kind":"cosine"}'.replace(/"/g, "&#34;")));
  assert.equal(escapeHtml(`<a href="x">&'`), "&#60;a href=&#34;x&#34;&#62;&#38;&#39;");
});

Deno.test({
  name: "report: pictures load in headless Chromium (and a broken one is detected)",
  ignore: !hasChromium,
  fn: async () => {
    // One browser run: the three real pictures load, the malformed one is counted as failed.
    const broken = { id: "bad", title: "bad", svg: "<svg><g></svg>" };
    assert.equal(await imagesLoaded(await sampleReport(broken)), "3/4");
  },
});

Deno.test("advice: derived from confusions, recall, train/val gap and the loss curve", () => {
  // 10 per class; Shirt (2) mostly predicted as T-shirt/top (0), the rest right.
  const t = [...Array(10).fill(0), ...Array(10).fill(1), ...Array(10).fill(2)];
  const p = [...Array(10).fill(0), ...Array(10).fill(1), ...Array(6).fill(0), 2, 2, 2, 2];
  const m = classificationMetrics(t, p, NAMES);
  const overfit = [1, 2, 3, 4].map((epoch) => ({
    epoch,
    loss: 1 / epoch,
    acc: 0.9 + epoch / 50,
    valLoss: [0.5, 0.4, 0.45, 0.5][epoch - 1],
    valAcc: 0.85,
    lr: 0.001,
  }));
  const advice = suggestions(m, overfit).join("\n");
  assert.match(advice, /Most confused pairs: Shirt <-> T-shirt\/top \(6\), 100\.0% of all errors/);
  assert.match(advice, /Low recall: Shirt 0\.400/);
  assert.match(advice, /Train\/validation gap 13\.0% at epoch 4/);
  assert.match(advice, /Validation loss bottomed out at epoch 2/);
  assert.doesNotMatch(advice, /underfits|still at its best/);
  // Perfect predictions, still-improving validation: no error advice, "train longer".
  const perfect = suggestions(classificationMetrics(t, t, NAMES), [
    { epoch: 1, loss: 0.5, acc: 0.95, valLoss: 0.4, valAcc: 0.94, lr: 0.001 },
    { epoch: 2, loss: 0.4, acc: 0.96, valLoss: 0.3, valAcc: 0.95, lr: 0.001 },
  ]);
  assert.deepEqual(perfect.length, 1);
  assert.match(perfect[0], /still at its best in the last epoch/);
});
