// Running an exported model in ONNX Runtime (onnxruntime-node, CPU execution provider): loading it
// (used to check every export before it is written), and batched class probabilities for Fashion-
// MNIST images prepared exactly as for our own inference (bytes / 255, NHWC).

import { UsageError } from "../errors.ts";
import { ORT_PACKAGE, requireOnnxRuntime } from "./ort_install.ts";
import { CLASS_NAMES, IMAGE_SIZE, PIXELS, type Split } from "../data/fashion_mnist.ts";
import { imagesToSplit, type Prediction } from "../eval/predict.ts";
import type { PreparedImage } from "../eval/image_input.ts";
import { topK } from "../eval/metrics.ts";
import { decodeModel } from "./onnx_proto.ts";
import { INPUT_NAME, OUTPUT_NAME } from "./onnx_export.ts";

/** The part of onnxruntime-node's API used here (the package is not a dependency to type from). */
interface OrtTensor {
  readonly dims: readonly number[];
  readonly data: unknown;
}

interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches: string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

interface Ort {
  InferenceSession: {
    create(model: Uint8Array, options: { logSeverityLevel: number }): Promise<OrtSession>;
  };
  Tensor: new (type: "float32", data: Float32Array, dims: number[]) => OrtTensor;
}

let ortModule: Promise<Ort> | undefined;

/**
 * onnxruntime-node is a native addon, installed (./ort_install.ts) and loaded on first use:
 * commands that never touch ONNX neither download nor load it.
 */
async function loadOrt(): Promise<Ort> {
  ortModule ??= requireOnnxRuntime() as Promise<Ort>;
  try {
    return await ortModule;
  } catch (e) {
    ortModule = undefined;
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `ONNX Runtime (npm:${ORT_PACKAGE}) cannot be loaded here (${firstLine(e)})`,
    );
  }
}

export interface OnnxClassifier {
  /** Class names from the model's metadata (`class_names`), else Fashion-MNIST's. */
  classNames: readonly string[];
  metadata: Record<string, string>;
  /** Probabilities [n, classes] for `n` images as float32 [n, 28, 28, 1]. */
  probabilities(images: Float32Array, n: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** ONNX Runtime's log levels: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. */
export type OrtLogLevel = 0 | 1 | 2 | 3 | 4;

/**
 * Opens a model (file path or bytes) in ONNX Runtime. A file that is not ONNX, or that ONNX
 * Runtime refuses (unknown operator, bad shapes), is a UsageError naming `what`.
 */
export async function openOnnxClassifier(
  source: string | Uint8Array,
  what = typeof source === "string" ? source : "ONNX model",
  logLevel: OrtLogLevel = 2,
): Promise<OnnxClassifier> {
  let bytes: Uint8Array;
  try {
    bytes = typeof source === "string" ? await Deno.readFile(source) : source;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${what}: file not found`);
    throw new UsageError(`${what}: cannot read (${(e as Error).message})`);
  }
  let metadata: Record<string, string>;
  try {
    const proto = decodeModel(bytes);
    metadata = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
  } catch (e) {
    throw new UsageError(`${what}: not an ONNX model (${(e as Error).message})`);
  }
  const ort = await loadOrt();
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(bytes, { logSeverityLevel: logLevel });
  } catch (e) {
    throw new UsageError(`${what}: ONNX Runtime cannot load it (${firstLine(e)})`);
  }
  if (!session.inputNames.includes(INPUT_NAME) || !session.outputNames.includes(OUTPUT_NAME)) {
    await session.release();
    throw new UsageError(
      `${what}: expected input "${INPUT_NAME}" and output "${OUTPUT_NAME}", found ` +
        `[${session.inputNames}] -> [${session.outputNames}] (not exported by \`deno task export\`?)`,
    );
  }
  const classNames = parseClassNames(metadata.class_names) ?? CLASS_NAMES;
  return {
    classNames,
    metadata,
    async probabilities(images, n) {
      const input = new ort.Tensor("float32", images, [n, IMAGE_SIZE, IMAGE_SIZE, 1]);
      let result: Record<string, OrtTensor>;
      try {
        result = await session.run({ [INPUT_NAME]: input }, [OUTPUT_NAME]);
      } catch (e) {
        throw new UsageError(`${what}: ONNX Runtime failed (${firstLine(e)})`);
      }
      const out = result[OUTPUT_NAME];
      if (out.dims.length !== 2 || out.dims[0] !== n || out.dims[1] !== classNames.length) {
        throw new UsageError(
          `${what}: output "${OUTPUT_NAME}" has shape [${out.dims}], ` +
            `expected [${n}, ${classNames.length}]`,
        );
      }
      return out.data as Float32Array;
    },
    close: () => session.release(),
  };
}

function parseClassNames(json: string | undefined): string[] | null {
  if (json === undefined) return null;
  try {
    const names = JSON.parse(json);
    return Array.isArray(names) && names.every((n) => typeof n === "string") ? names : null;
  } catch {
    return null;
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/** Images `[start, end)` of a split as float32 NHWC in [0, 1]: the scaling of `imagesToTensor`. */
export function imagesToFloat32(split: Split, start: number, end: number): Float32Array {
  const bytes = split.images.subarray(start * PIXELS, end * PIXELS);
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
  return out;
}

/** Probabilities [count, classes] for every image of `split`, in batches. */
export async function onnxPredictProbabilities(
  model: OnnxClassifier,
  split: Split,
  batchSize = 500,
): Promise<Float32Array> {
  const k = model.classNames.length;
  const out = new Float32Array(split.count * k);
  for (let start = 0; start < split.count; start += batchSize) {
    const end = Math.min(split.count, start + batchSize);
    out.set(await model.probabilities(imagesToFloat32(split, start, end), end - start), start * k);
  }
  return out;
}

/** `predict --onnx`: top-k classes per prepared image, as `predictImages` gives them. */
export async function onnxPredictImages(
  model: OnnxClassifier,
  images: readonly PreparedImage[],
  k = 3,
  batchSize = 500,
): Promise<Prediction[]> {
  const probs = await onnxPredictProbabilities(model, imagesToSplit(images), batchSize);
  const n = model.classNames.length;
  return images.map((img, i) => ({
    source: img.source,
    notes: img.notes,
    top: topK(probs.subarray(i * n, (i + 1) * n), k).map((r) => ({
      ...r,
      name: model.classNames[r.label],
    })),
  }));
}
