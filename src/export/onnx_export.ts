// A trained checkpoint as an ONNX model: input `images` float32 [N, 28, 28, 1] (NHWC, pixels / 255,
// as in training), output `probabilities` [N, 10] (optionally `logits` too), class names and the
// model's provenance in `metadata_props`. Only standard operators: Transpose (NHWC -> NCHW once at
// the input), Conv, Relu, MaxPool, Flatten, GlobalAveragePool, Gemm, Softmax.
//
// Per layer:
// - conv + batch norm + ReLU: batch norm folded into the Conv's weights and bias with the moving
//   statistics, by the very function the inference kernel uses (`foldBatchNorm`: scale =
//   gamma / sqrt(moving_variance + eps), shift = beta - moving_mean * scale), then W' = W * scale
//   per output channel and bias = shift;
// - our HWIO conv kernels become ONNX's OIHW;
// - Flatten runs on NCHW (channel-major) where ours flattens NHWC (channel-minor), so the rows of the
//   dense kernel after it are permuted instead of adding a Transpose to the graph;
// - dropout is the identity at inference and is left out.
//
// The layer plan below mirrors `buildLayers` in src/model/model.ts. It is checked against the
// model's variables on every export (names and shapes) and numerically against our inference path
// in test/export_onnx_test.ts, so a change to a model that is not carried over here fails loudly.

import * as tf from "@tensorflow/tfjs-core";
import denoConfig from "../../deno.json" with { type: "json" };
import { UsageError } from "../errors.ts";
import { CLASS_NAMES, IMAGE_SIZE } from "../data/fashion_mnist.ts";
import { type LoadedCheckpoint, restoreWeights } from "../model/checkpoint.ts";
import { createModel, type Model, type ModelName } from "../model/model.ts";
import { foldBatchNorm } from "../ops/conv_bn_relu/conv_bn_relu.ts";
import {
  encodeModel,
  floatTensor,
  floatValueInfo,
  type ModelProto,
  node,
  type NodeProto,
  type TensorProto,
} from "./onnx_proto.ts";

export const PROJECT_VERSION: string = denoConfig.version;
export const INPUT_NAME = "images";
export const OUTPUT_NAME = "probabilities";
export const LOGITS_NAME = "logits";

/** Opset 13 is read by every current runtime and converter; 11..21 are accepted. */
export const DEFAULT_OPSET = 13;
export const MIN_OPSET = 11;
export const MAX_OPSET = 21;
/** The IR version of the ONNX release that introduced each opset (onnx.helper's VERSION_TABLE). */
const IR_VERSION: Record<number, number> = {
  11: 6,
  12: 7,
  13: 7,
  14: 7,
  15: 8,
  16: 8,
  17: 8,
  18: 8,
  19: 9,
  20: 9,
  21: 10,
};

export const INPUT_FORMAT = "float32 [N, 28, 28, 1] (NHWC), grey pixel / 255 in [0, 1], " +
  "light garment on a black background (Fashion-MNIST), as `deno task predict` prepares images";

type Step =
  | { kind: "convRelu"; name: string; pad: "same" | "valid" }
  | { kind: "convBnRelu"; name: string }
  | { kind: "maxPool2" }
  | { kind: "flatten" }
  | { kind: "globalAvgPool" }
  | { kind: "dense"; name: string; relu: boolean };

const POOL: Step = { kind: "maxPool2" };
const LOGITS: Step = { kind: "dense", name: "logits", relu: false };
/** flatten, a ReLU dense layer, then the logits layer. */
const DENSE_HEAD: readonly Step[] = [
  { kind: "flatten" },
  { kind: "dense", name: "dense1", relu: true },
  LOGITS,
];
/** Block `b` of the BN models: two conv+BN+ReLU layers `block<b>/conv1`, `block<b>/conv2`. */
const bnBlock = (b: number): Step[] =>
  [1, 2].map((c) => ({ kind: "convBnRelu", name: `block${b}/conv${c}` }));

/** The inference-time layers of each model (src/model/model.ts, `buildLayers`), dropout omitted. */
export const EXPORT_PLANS: Record<ModelName, readonly Step[]> = {
  baseline: [
    { kind: "convRelu", name: "conv1", pad: "valid" },
    POOL,
    { kind: "convRelu", name: "conv2", pad: "valid" },
    POOL,
    ...DENSE_HEAD,
  ],
  enhanced: [...bnBlock(1), POOL, ...bnBlock(2), POOL, ...DENSE_HEAD],
  wide: [
    ...bnBlock(1),
    POOL,
    ...bnBlock(2),
    POOL,
    ...bnBlock(3),
    { kind: "globalAvgPool" },
    LOGITS,
  ],
};

export interface ExportOptions {
  /** ONNX operator set version (default 13). */
  opset?: number;
  /** Also output the logits (pre-softmax) as a second graph output. */
  logits?: boolean;
  /** Test-set accuracy of this checkpoint (from the run's metrics.json), stored in the metadata. */
  testAccuracy?: { accuracy: number; images: number };
}

export interface ExportResult {
  bytes: Uint8Array;
  model: ModelName;
  opset: number;
  /** ONNX operator types used, in graph order without repeats. */
  operators: string[];
  parameters: number;
  metadata: Record<string, string>;
}

export function checkOpset(opset: number, flag = "--opset"): number {
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new UsageError(`${flag} must be an integer in ${MIN_OPSET}..${MAX_OPSET}, got ${opset}`);
  }
  return opset;
}

/**
 * Builds the ONNX model of a checkpoint. The checkpoint is first restored into a fresh model of its
 * kind (`restoreWeights`: a checkpoint of an unknown model, with missing variables or mismatched
 * shapes is refused with a CheckpointError naming it), so nothing is exported that our own code
 * would not run. Works on any tfjs backend; nothing is written.
 */
export async function exportCheckpoint(
  ck: LoadedCheckpoint,
  opts: ExportOptions = {},
): Promise<ExportResult> {
  const opset = checkOpset(opts.opset ?? DEFAULT_OPSET);
  const model = createModel(ck.meta.model, ck.meta.modelConfig);
  try {
    restoreWeights(model, ck);
    const graph = await buildGraph(model, !!opts.logits);
    const metadata: Record<string, string> = {
      model: model.name,
      class_names: JSON.stringify(CLASS_NAMES),
      input_format: INPUT_FORMAT,
      project_version: PROJECT_VERSION,
      checkpoint_saved_at: String(ck.meta.savedAt ?? ""),
      batch_norm: "folded into Conv weights and bias from the moving statistics",
    };
    if (opts.testAccuracy) {
      metadata.test_accuracy = opts.testAccuracy.accuracy.toFixed(6);
      metadata.test_images = String(opts.testAccuracy.images);
    }
    const proto: ModelProto = {
      irVersion: IR_VERSION[opset],
      producerName: "fmnist-webgpu",
      producerVersion: PROJECT_VERSION,
      domain: "fmnist-webgpu",
      modelVersion: 1,
      docString: `Fashion-MNIST classifier "${model.name}". Input: ${INPUT_FORMAT}. ` +
        `Output: class probabilities [N, ${CLASS_NAMES.length}] in class_names order.`,
      opsetImport: [{ domain: "", version: opset }],
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: `fmnist_${model.name}`,
        node: graph.nodes,
        initializer: graph.initializers,
        input: [floatValueInfo(INPUT_NAME, ["N", IMAGE_SIZE, IMAGE_SIZE, 1], INPUT_FORMAT)],
        output: graph.outputs,
      },
    };
    return {
      bytes: encodeModel(proto),
      model: model.name,
      opset,
      operators: [...new Set(graph.nodes.map((n) => n.opType!))],
      parameters: graph.parameters,
      metadata,
    };
  } finally {
    model.dispose();
  }
}

interface Graph {
  nodes: NodeProto[];
  initializers: TensorProto[];
  outputs: ReturnType<typeof floatValueInfo>[];
  parameters: number;
}

/** Walks the plan, tracking the NCHW activation shape, and emits nodes and initializers. */
async function buildGraph(model: Model, withLogits: boolean): Promise<Graph> {
  const plan = EXPORT_PLANS[model.name];
  const vars = new Map(model.variables.map((v) => [v.name, v.variable]));
  const used = new Set<string>();
  const take = async (name: string, shape: number[]): Promise<Float32Array> => {
    const v = vars.get(name);
    if (!v || v.shape.join(",") !== shape.join(",")) {
      throw new Error(
        `export plan for "${model.name}" is out of date with src/model/model.ts: it wants ` +
          `variable ${name} [${shape}], the model has ${v ? `[${v.shape}]` : "none"}`,
      );
    }
    used.add(name);
    return await v.data() as Float32Array;
  };
  const shapeOf = (name: string) => vars.get(name)?.shape ?? [];

  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const init = (name: string, dims: number[], data: Float32Array) => {
    initializers.push(floatTensor(name, dims, data));
    return name;
  };
  nodes.push(node("Transpose", [INPUT_NAME], ["nchw"], "to_nchw", { perm: [0, 3, 1, 2] }));
  let x = "nchw";
  let c = 1, h = IMAGE_SIZE, w = IMAGE_SIZE;
  /** Set after Flatten of an NCHW map: the next dense layer's rows are reordered. */
  let flattened: { c: number; h: number; w: number } | null = null;
  let features = 0;

  for (const step of plan) {
    switch (step.kind) {
      case "convRelu":
      case "convBnRelu": {
        const outC = shapeOf(`${step.name}/kernel`)[3];
        const kernel = await take(`${step.name}/kernel`, [3, 3, c, outC]);
        let scale: Float32Array | null = null;
        let bias: Float32Array;
        if (step.kind === "convBnRelu") {
          const [gamma, beta, mean, variance] = ["gamma", "beta", "moving_mean", "moving_variance"]
            .map((p) => `${step.name}/${p}`);
          for (const n of [gamma, beta, mean, variance]) await take(n, [outC]);
          const folded = foldBatchNorm(
            vars.get(gamma) as tf.Tensor1D,
            vars.get(beta) as tf.Tensor1D,
            vars.get(mean) as tf.Tensor1D,
            vars.get(variance) as tf.Tensor1D,
          );
          scale = await folded.scale.data() as Float32Array;
          bias = await folded.shift.data() as Float32Array;
          tf.dispose([folded.scale, folded.shift]);
        } else {
          bias = await take(`${step.name}/bias`, [outC]);
        }
        const weight = hwioToOihw(kernel, c, outC, scale);
        const pad = step.kind === "convRelu" && step.pad === "valid" ? 0 : 1;
        const W = init(`${step.name}/weight`, [outC, c, 3, 3], weight);
        const B = init(`${step.name}/bias`, [outC], bias);
        const y = `${step.name}/conv`;
        const attrs = {
          kernel_shape: [3, 3],
          strides: [1, 1],
          pads: [pad, pad, pad, pad],
          dilations: [1, 1],
          group: 1,
        };
        nodes.push(
          node("Conv", [x, W, B], [y], y, attrs),
          node("Relu", [y], [`${step.name}/relu`], `${step.name}/relu`),
        );
        x = `${step.name}/relu`;
        c = outC;
        h = h + 2 * pad - 2;
        w = w + 2 * pad - 2;
        break;
      }
      case "maxPool2": {
        const y = `pool${nodes.filter((n) => n.opType === "MaxPool").length + 1}`;
        nodes.push(node("MaxPool", [x], [y], y, {
          kernel_shape: [2, 2],
          strides: [2, 2],
          pads: [0, 0, 0, 0],
        }));
        x = y;
        h = Math.floor(h / 2);
        w = Math.floor(w / 2);
        break;
      }
      case "flatten":
        nodes.push(node("Flatten", [x], ["flatten"], "flatten", { axis: 1 }));
        x = "flatten";
        flattened = { c, h, w };
        features = c * h * w;
        break;
      case "globalAvgPool":
        nodes.push(
          node("GlobalAveragePool", [x], ["gap"], "global_avg_pool"),
          node("Flatten", ["gap"], ["gap_flat"], "gap_flatten", { axis: 1 }),
        );
        x = "gap_flat";
        features = c;
        break;
      case "dense": {
        const outF = shapeOf(`${step.name}/kernel`)[1];
        let kernel = await take(`${step.name}/kernel`, [features, outF]);
        if (flattened) kernel = nhwcRowsToNchw(kernel, flattened, outF);
        flattened = null;
        const bias = await take(`${step.name}/bias`, [outF]);
        const W = init(`${step.name}/weight`, [features, outF], kernel);
        const B = init(`${step.name}/bias`, [outF], bias);
        const y = step.relu ? `${step.name}/gemm` : step.name;
        nodes.push(node("Gemm", [x, W, B], [y], `${step.name}/gemm`, { transA: 0, transB: 0 }));
        x = y;
        if (step.relu) {
          nodes.push(node("Relu", [y], [`${step.name}/relu`], `${step.name}/relu`));
          x = `${step.name}/relu`;
        }
        features = outF;
        break;
      }
    }
  }
  const unused = [...vars.keys()].filter((n) => !used.has(n));
  if (unused.length > 0 || features !== CLASS_NAMES.length) {
    throw new Error(
      `export plan for "${model.name}" is out of date with src/model/model.ts` +
        (unused.length > 0 ? `: variables not exported: ${unused.join(", ")}` : "") +
        (features !== CLASS_NAMES.length ? `: ends in ${features} outputs` : ""),
    );
  }
  nodes.push(node("Softmax", [x], [OUTPUT_NAME], "softmax", { axis: 1 }));
  const outputs = [floatValueInfo(OUTPUT_NAME, ["N", CLASS_NAMES.length], "class probabilities")];
  if (withLogits) {
    if (x !== LOGITS_NAME) throw new Error(`the last layer of ${model.name} is not "logits"`);
    outputs.push(floatValueInfo(LOGITS_NAME, ["N", CLASS_NAMES.length], "pre-softmax scores"));
  }
  const parameters = initializers.reduce((s, t) => s + t.dims!.reduce((a, b) => a * +b, 1), 0);
  return { nodes, initializers, outputs, parameters };
}

/** [3, 3, Cin, Cout] (ours) -> [Cout, Cin, 3, 3] (ONNX), each output channel times scale[o]. */
export function hwioToOihw(
  kernel: Float32Array,
  inC: number,
  outC: number,
  scale: Float32Array | null,
): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let ky = 0; ky < 3; ky++) {
    for (let kx = 0; kx < 3; kx++) {
      for (let i = 0; i < inC; i++) {
        for (let o = 0; o < outC; o++) {
          const v = kernel[((ky * 3 + kx) * inC + i) * outC + o];
          out[((o * inC + i) * 3 + ky) * 3 + kx] = scale ? v * scale[o] : v;
        }
      }
    }
  }
  return out;
}

/** Reorders dense-kernel rows from NHWC flatten order (h, w, c) to NCHW order (c, h, w). */
export function nhwcRowsToNchw(
  kernel: Float32Array,
  dims: { c: number; h: number; w: number },
  outF: number,
): Float32Array {
  const { c, h, w } = dims;
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) {
        const from = ((y * w + x) * c + k) * outF;
        const to = ((k * h + y) * w + x) * outF;
        out.set(kernel.subarray(from, from + outF), to);
      }
    }
  }
  return out;
}
