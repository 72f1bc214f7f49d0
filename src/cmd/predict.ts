// `fmnist predict --run DIR FILE...`: top-3 classes for PNG images or IDX image files.

import { parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { formatPredictions, loadInputs, predictImages } from "../eval/predict.ts";
import { loadModelForInference } from "../model/checkpoint.ts";
import { startTf } from "../tf/setup.ts";

const DEFS = {
  run: { type: "string", help: "run folder (its best checkpoint is used)" },
  checkpoint: { type: "string", help: "checkpoint folder or checkpoint.json (instead of --run)" },
  onnx: {
    type: "string",
    help: "model.onnx from `export`, run in ONNX Runtime (instead of --run)",
  },
  limit: { type: "int", min: 1, default: 20, help: "images to classify per IDX file" },
  top: { type: "int", min: 1, max: 10, default: 3, help: "classes to print per image" },
  "batch-size": { type: "int", min: 1, max: 10000, default: 500, help: "images per forward pass" },
  backend: { type: "enum", choices: ["webgpu", "cpu"], default: "webgpu", help: "tfjs backend" },
} as const;

const USAGE = "fmnist predict --run DIR | --checkpoint PATH | --onnx FILE FILE...";
const INTRO = "Classifies PNG images (any size, colour or grey) or IDX image files ([n,28,28]).\n" +
  "PNGs are converted to grey by luminance, padded to square, resized to 28x28 (area\n" +
  "averaging) and inverted when their background (border mean) is light, to match\n" +
  "Fashion-MNIST's light garments on black.";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, DEFS, { usage: USAGE, intro: INTRO, positionals: true });
  if (f === null) return;
  const source = f.checkpoint ?? f.run;
  if (source === undefined && f.onnx === undefined) {
    throw new UsageError("give --run DIR, --checkpoint PATH or --onnx FILE (see --help)");
  }
  if (source !== undefined && f.onnx !== undefined) {
    throw new UsageError("give --onnx FILE or --run/--checkpoint, not both");
  }
  if (f._.length === 0) throw new UsageError("give at least one PNG or IDX image file to classify");
  // Read every input first: a bad file fails fast, before the (slow) backend and model start.
  const images = await loadInputs(f._, f.limit);
  if (source === undefined) {
    // --onnx: the exported model in ONNX Runtime, on the same prepared images; no tfjs at all.
    const { openOnnxClassifier, onnxPredictImages } = await import("../export/onnx_runtime.ts");
    const onnx = await openOnnxClassifier(f.onnx!, `--onnx ${f.onnx}`);
    try {
      console.log(formatPredictions(await onnxPredictImages(onnx, images, f.top, f["batch-size"])));
    } finally {
      await onnx.close();
    }
    return;
  }
  // The adapter line goes to stderr: stdout carries only the predictions.
  await startTf("predict", f.backend as "webgpu" | "cpu", "any", (m) => console.error(m));
  const { model } = await loadModelForInference(source);
  try {
    const preds = await predictImages(model, images, f.top, f["batch-size"]);
    console.log(formatPredictions(preds));
  } finally {
    model.dispose();
  }
}
