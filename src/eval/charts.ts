// Vega-Lite specs for the evaluation pictures: training curves, confusion matrix, per-class F1 and
// grids of test images. Pure data -> spec functions; render.ts turns a spec into SVG/PNG.

import type { TopLevelSpec } from "vega-lite";
import type { ClassMetrics } from "./metrics.ts";
import { CHART_FONT, dataUrl, grayPng } from "./render.ts";

/** One row of a run's history.json (written by training). */
export interface HistoryEntry {
  epoch: number;
  loss: number;
  acc: number;
  valLoss?: number | null;
  valAcc?: number | null;
  lr: number;
  epochTimeS?: number;
}

/** A test image with its labels, for the correct/incorrect grids. */
export interface Sample {
  /** 28x28 greyscale, 0 = black background (as stored in Fashion-MNIST). */
  pixels: Uint8Array;
  index: number;
  trueName: string;
  predictedName: string;
  confidence: number;
}

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const CONFIG = {
  font: CHART_FONT,
  background: "white",
  view: { stroke: "#ddd" },
  title: { fontSize: 14, anchor: "start" as const },
};

/** Loss and accuracy per epoch (train vs validation) and the learning rate, stacked vertically. */
export function trainingCurvesSpec(history: readonly HistoryEntry[], title: string): TopLevelSpec {
  const rows: { epoch: number; metric: string; split: string; value: number }[] = [];
  const push = (epoch: number, metric: string, split: string, v: number | null | undefined) => {
    if (typeof v === "number" && Number.isFinite(v)) rows.push({ epoch, metric, split, value: v });
  };
  for (const h of history) {
    push(h.epoch, "loss", "train", h.loss);
    push(h.epoch, "loss", "validation", h.valLoss);
    push(h.epoch, "accuracy", "train", h.acc);
    push(h.epoch, "accuracy", "validation", h.valAcc);
    push(h.epoch, "learning rate", "lr", h.lr);
  }
  const epochAxis = { field: "epoch", type: "quantitative" as const, axis: { tickMinStep: 1 } };
  const color = {
    field: "split",
    type: "nominal" as const,
    title: null,
    scale: { domain: ["train", "validation"], range: ["#1f77b4", "#ff7f0e"] },
  };
  const panel = (metric: string, height: number, extra: Record<string, unknown> = {}) => ({
    height,
    width: 440,
    transform: [{ filter: { field: "metric", equal: metric } }],
    mark: { type: "line" as const, point: true },
    encoding: {
      x: epochAxis,
      y: { field: "value", type: "quantitative" as const, title: metric, scale: { zero: false } },
      ...extra,
    },
  });
  return {
    $schema: SCHEMA,
    title,
    config: CONFIG,
    data: { values: rows },
    vconcat: [
      panel("loss", 170, { color }),
      panel("accuracy", 170, { color }),
      {
        ...panel("learning rate", 90),
        mark: { type: "line" as const, point: true, color: "#2ca02c" },
      },
    ],
  } as TopLevelSpec;
}

/** Heatmap of the confusion matrix: colour = fraction of the true class, text = count. */
export function confusionMatrixSpec(
  confusion: number[][],
  names: readonly string[],
  title: string,
): TopLevelSpec {
  const values = confusion.flatMap((row, t) => {
    const support = row.reduce((a, b) => a + b, 0);
    return row.map((count, p) => ({
      true: names[t],
      predicted: names[p],
      count,
      fraction: support === 0 ? 0 : count / support,
    }));
  });
  const axis = (title: string) => ({ sort: [...names], title });
  return {
    $schema: SCHEMA,
    title,
    config: CONFIG,
    data: { values },
    width: { step: 44 },
    height: { step: 34 },
    encoding: {
      x: { field: "predicted", type: "nominal", ...axis("predicted"), axis: { labelAngle: -40 } },
      y: { field: "true", type: "nominal", ...axis("true") },
    },
    layer: [
      {
        mark: "rect",
        encoding: {
          color: {
            field: "fraction",
            type: "quantitative",
            title: "share of row",
            scale: { scheme: "blues", domain: [0, 1] },
          },
        },
      },
      {
        mark: { type: "text", fontSize: 11 },
        encoding: {
          text: { field: "count", type: "quantitative" },
          color: {
            condition: { test: "datum.fraction > 0.5", value: "white" },
            value: "black",
          },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Horizontal bars of per-class F1 with the value printed at the end of each bar. */
export function f1BarSpec(perClass: readonly ClassMetrics[], title: string): TopLevelSpec {
  const values = perClass.map((c) => ({
    class: c.name,
    f1: c.f1,
    precision: c.precision,
    recall: c.recall,
  }));
  const names = perClass.map((c) => c.name);
  return {
    $schema: SCHEMA,
    title,
    config: CONFIG,
    data: { values },
    width: 360,
    height: { step: 24 },
    encoding: {
      y: { field: "class", type: "nominal", sort: names, title: null },
      x: { field: "f1", type: "quantitative", title: "F1", scale: { domain: [0, 1] } },
    },
    layer: [
      { mark: { type: "bar", color: "#4c78a8" } },
      {
        mark: { type: "text", align: "left", dx: 3, fontSize: 11 },
        encoding: { text: { field: "f1", type: "quantitative", format: ".3f" } },
      },
    ],
  } as TopLevelSpec;
}

/**
 * A grid of 28x28 test images (shown 2x), each labelled "true / predicted p".
 * Each image travels as a PNG data URL in the spec, so the SVG is self-contained.
 */
export function imageGridSpec(
  samples: readonly Sample[],
  title: string,
  columns = 8,
): TopLevelSpec {
  const rows = Math.max(1, Math.ceil(samples.length / columns));
  const cols = Math.min(columns, Math.max(1, samples.length));
  const cellW = 124, cellH = 92, image = 56;
  // Positions are computed here in pixels; identity scales keep Vega from rescaling them.
  const values = samples.map((s, i) => ({
    x: (i % columns + 0.5) * cellW,
    imageY: Math.floor(i / columns) * cellH + 4,
    textY: Math.floor(i / columns) * cellH + image + 8,
    url: dataUrl("image/png", grayPng(upscale(s.pixels, 28, 2), 56, 56)),
    label: [`true: ${s.trueName}`, `pred: ${s.predictedName} ${s.confidence.toFixed(2)}`],
    wrong: s.trueName !== s.predictedName,
  }));
  const width = cols * cellW, height = rows * cellH;
  const pixels = (field: string, size: number) => ({
    field,
    type: "quantitative" as const,
    axis: null,
    scale: { domain: [0, size], range: [0, size] },
  });
  return {
    $schema: SCHEMA,
    title,
    config: { ...CONFIG, view: { stroke: null } },
    data: { values },
    width,
    height,
    layer: [
      {
        mark: { type: "image", width: image, height: image, align: "center", baseline: "top" },
        encoding: {
          x: pixels("x", width),
          y: pixels("imageY", height),
          url: { field: "url", type: "nominal" },
        },
      },
      {
        mark: { type: "text", baseline: "top", fontSize: 9, lineHeight: 11 },
        encoding: {
          x: pixels("x", width),
          y: pixels("textY", height),
          text: { field: "label" },
          color: { condition: { test: "datum.wrong", value: "#c0392b" }, value: "#222" },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Nearest-neighbour upscale by an integer factor, so viewers show crisp pixels (no smoothing). */
export function upscale(pixels: Uint8Array, size: number, factor: number): Uint8Array {
  const out = new Uint8Array(size * size * factor * factor);
  const outSize = size * factor;
  for (let y = 0; y < outSize; y++) {
    for (let x = 0; x < outSize; x++) {
      out[y * outSize + x] = pixels[Math.floor(y / factor) * size + Math.floor(x / factor)];
    }
  }
  return out;
}
