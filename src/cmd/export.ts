// `fmnist export --run DIR | --checkpoint PATH [--out FILE] [--opset N]`: the trained model as ONNX.

import { parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { exportToOnnxFile, onnxTestAccuracy } from "../export/export_run.ts";
import { DEFAULT_OPSET, MAX_OPSET, MIN_OPSET } from "../export/onnx_export.ts";
import { initTf } from "../tf/setup.ts";

const DEFS = {
  run: { type: "string", help: "run folder (its best checkpoint, else last, is exported)" },
  checkpoint: { type: "string", help: "checkpoint folder or checkpoint.json (instead of --run)" },
  out: { type: "string", help: "ONNX file to write (default: <run folder>/model.onnx)" },
  opset: {
    type: "int",
    min: MIN_OPSET,
    max: MAX_OPSET,
    default: DEFAULT_OPSET,
    help: "ONNX operator set version",
  },
  logits: { type: "bool", help: "also output `logits` (pre-softmax) beside `probabilities`" },
  verify: {
    type: "bool",
    help: "then run the file in ONNX Runtime on the 10k test images and print its accuracy",
  },
  data: { type: "string", help: "Fashion-MNIST folder for --verify (default: as train/eval)" },
} as const;

const USAGE = "fmnist export --run DIR | --checkpoint PATH [--out FILE] [--opset N]";
const INTRO =
  "Writes the model as ONNX: input `images` float32 [N,28,28,1] (pixels / 255, as predict\n" +
  "prepares them), output `probabilities` [N,10]; batch norm folded into the convolutions, class\n" +
  "names and test accuracy in the metadata. The file is loaded and run in ONNX Runtime before it\n" +
  "is written (atomically: an existing file is replaced whole or not at all).";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, DEFS, { usage: USAGE, intro: INTRO });
  if (f === null) return;
  if (f.run !== undefined && f.checkpoint !== undefined) {
    throw new UsageError("give --run DIR or --checkpoint PATH, not both");
  }
  const source = f.checkpoint ?? f.run;
  if (source === undefined) {
    throw new UsageError("give --run DIR or --checkpoint PATH (see --help)");
  }
  // Exporting only reads weights and folds batch norm: the CPU backend is enough, and no GPU needed.
  await initTf("cpu");
  const r = await exportToOnnxFile(source, { out: f.out, opset: f.opset, logits: f.logits });
  const acc = r.metadata.test_accuracy
    ? `, test accuracy ${(100 * Number(r.metadata.test_accuracy)).toFixed(2)}% ` +
      `on ${r.metadata.test_images} images`
    : "";
  console.log(`export: ${r.checkpoint} (${r.model}${acc})`);
  console.log(
    `wrote ${r.out}: ${(r.bytes.byteLength / 1e6).toFixed(2)} MB, opset ${r.opset}, ` +
      `${r.parameters.toLocaleString("en-US")} parameters, operators ${r.operators.join(" ")}; ` +
      "checked in ONNX Runtime",
  );
  if (f.verify) {
    const v = await onnxTestAccuracy(r.out, { dataDir: f.data, log: () => {} });
    const evalAcc = r.metadata.test_accuracy
      ? ` (eval: ${(100 * Number(r.metadata.test_accuracy)).toFixed(2)}% on ` +
        `${r.metadata.test_images}, metrics.json)`
      : "";
    console.log(
      `ONNX Runtime test accuracy ${(100 * v.accuracy).toFixed(2)}% on ${v.images} images` +
        `${evalAcc}, ${v.seconds.toFixed(1)} s`,
    );
  }
}
