// WebGPU programs of the fused conv + batch-norm + ReLU backward and the logic that dispatches
// them (the kernel registration lives in conv_bn_relu_grad.ts). WGSL bodies: kernels/
// conv_bn_relu_bwd_*.wgsl, each with a header giving bindings, layouts and grid mapping.
//
// Passes (fast path, 4 compute passes + 3 small finalizes):
//   1. reduce:  per-channel partial sums of g and g*xhat over row chunks  -> (P*8, 2, Cout)
//      finalize: sum_partials twice -> dbeta, dgamma (Cout). dx and dfilter both need these
//      grid-wide sums before any dz exists, hence a pass of their own.
//   2. dz:      materialise dz (M, Cout) once; both convolution backprops read it (cheaper than
//      recomputing the batch-norm math per read; measured in bench/conv_bn_relu_bwd_probe.ts).
//   3. data:    dx = conv2d backprop-input of dz, register-tiled over input channels.
//   4. weight:  dfilter partials over S slices of the M reduction -> (S, KH*KW*Cin, Cout)
//      finalize: sum_partials -> dfilter (skipped when S = 1).
// Naive path (FMNIST_NAIVE_KERNELS=1): reduce_v1 (packed sums), data_v1 and weight_v1, which
// compute dz on the fly; kept as oracle and fallback. A program binds at most 8 storage buffers
// (WebGPU default limit), output included.
//
// Every input is bound as a flat 1-D view and every output is produced flat and relabelled, so
// shapes reach the GPU only as uniforms and one pipeline serves every batch size; shader keys
// hold compile-time facts only (kernel file, VC tile width).

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./conv_geometry.ts";
import { kernelSource, runProgram, type Uniform } from "./webgpu_program.ts";
import { useNaiveKernels } from "./conv_bn_relu_fwd.ts";

/** One uniform field: WGSL name, WGSL type, value. */
type Field = [name: string, type: "i32" | "f32", value: number];

const WORKGROUP = 64;

/** One backward kernel: WGSL sources (helpers first), flat output, explicit or flat grid. */
class ConvBnReluBwdProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableNames: string[];
  uniforms: string;
  private readonly source: string;

  constructor(opts: {
    /** kernels/<name>.wgsl files, concatenated in order (helpers before the kernel). */
    kernels: string[];
    variableNames: string[];
    outputSize: number;
    fields: Field[];
    /** Explicit grid for kernels that map workgroupId themselves; default flat, 64 per group. */
    grid?: { dispatch: [number, number, number]; workgroupSize: [number, number, number] };
    /** Compile-time constants (`const VC : i32 = 4;`), part of the shader key. */
    constants?: Record<string, number>;
  }) {
    const constants = Object.entries(opts.constants ?? {});
    this.outputShape = [opts.outputSize];
    this.variableNames = opts.variableNames;
    this.uniforms = opts.fields.map(([name, type]) => `${name} : ${type},`).join(" ");
    this.shaderKey = `cbr_bwd_${opts.kernels.join("+")}_${
      constants.map(([k, v]) => `${k}${v}`).join("_")
    }`;
    this.source = [
      ...constants.map(([k, v]) => `const ${k} : i32 = ${v};`),
      ...opts.kernels.map(kernelSource),
    ].join("\n");
    if (opts.grid) {
      // A two-axis layout makes the backend call `main()` (no flat index); the kernels read
      // workgroupId/localId. The dispatch stays within the per-dimension limit by construction.
      this.dispatchLayout = { x: [0], y: [0] };
      this.dispatch = opts.grid.dispatch;
      this.workgroupSize = opts.grid.workgroupSize;
    } else {
      this.dispatchLayout = { x: [0] };
      this.dispatch = [Math.ceil(opts.outputSize / WORKGROUP), 1, 1];
      this.workgroupSize = [WORKGROUP, 1, 1];
    }
  }

  getUserCode(): string {
    return this.source;
  }
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The same buffer seen as a flat vector (program inputs only; nothing is allocated). */
function flat(t: TensorInfo): TensorInfo {
  return { dataId: t.dataId, shape: [size(t.shape)], dtype: t.dtype };
}

function run(
  backend: WebGPUBackend,
  program: ConvBnReluBwdProgram,
  inputs: TensorInfo[],
  fields: Field[],
): TensorInfo {
  const uniforms: Uniform[] = fields.map(([, type, value]) => ({
    type: type === "i32" ? "int32" : "float32",
    data: [value],
  }));
  return runProgram(backend, program, inputs.map(flat), uniforms);
}

function geometryFields(g: ConvGeometry): Field[] {
  const m = g.batch * g.outH * g.outW;
  return [
    ["batch", "i32", g.batch],
    ["inH", "i32", g.inH],
    ["inW", "i32", g.inW],
    ["inC", "i32", g.inC],
    ["outH", "i32", g.outH],
    ["outW", "i32", g.outW],
    ["outC", "i32", g.outC],
    ["kH", "i32", g.kH],
    ["kW", "i32", g.kW],
    ["strideH", "i32", g.strideH],
    ["strideW", "i32", g.strideW],
    ["padTop", "i32", g.padTop],
    ["padLeft", "i32", g.padLeft],
    ["invM", "f32", 1 / m],
  ];
}

export interface ConvBnReluGradTensors {
  dy: TensorInfo;
  x: TensorInfo;
  filter: TensorInfo;
  gamma: TensorInfo;
  beta: TensorInfo;
  z: TensorInfo;
  stats: TensorInfo;
}

/** Tunables of the fast path (the probe script sweeps them; defaults are the measured best). */
export interface BwdTuning {
  /** vec4 accumulators per invocation in the dx kernel (4*VC input channels). */
  dataVC: number;
  /** vec4 accumulators per invocation in the dfilter kernel (4*VC output channels). */
  weightVC: number;
  /** Workgroups the split reductions aim for (fills llvmpipe's threads with room to balance). */
  targetWorkgroups: number;
}

export const DEFAULT_TUNING: BwdTuning = { dataVC: 4, weightVC: 4, targetWorkgroups: 64 };

/** Runs the backward on the webgpu backend; returns [dx, dfilter, dgamma, dbeta]. */
export function convBnReluTrainGradWebGPU(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  opts: { naive?: boolean; tuning?: BwdTuning } = {},
): TensorInfo[] {
  const outs = (opts.naive ?? useNaiveKernels())
    ? runNaive(backend, t, g)
    : runFast(backend, t, g, opts.tuning ?? DEFAULT_TUNING);
  const shapes = [t.x.shape, t.filter.shape, t.gamma.shape, t.beta.shape];
  return outs.map((o, i) => ({ dataId: o.dataId, shape: [...shapes[i]], dtype: o.dtype }));
}

function runNaive(backend: WebGPUBackend, t: ConvBnReluGradTensors, g: ConvGeometry) {
  const geo = geometryFields(g);
  const bn = [t.dy, t.z, t.stats, t.gamma, t.beta];
  const bnNames = ["dy", "z", "stats", "gamma", "beta"];
  // (2, Cout) = dbeta; dgamma packed in one buffer: the gathers below already bind 7 storage
  // buffers + the output, and WebGPU's default limit is 8 per stage.
  const sumsProgram = new ConvBnReluBwdProgram({
    kernels: ["conv_bn_relu_bwd_reduce_v1"],
    variableNames: bnNames,
    outputSize: 2 * g.outC,
    fields: geo,
  });
  const sums = run(backend, sumsProgram, bn, geo);
  const gather = (kernel: string, outputSize: number, last: TensorInfo, lastName: string) => {
    const program = new ConvBnReluBwdProgram({
      kernels: ["conv_bn_relu_bwd_bn_fn", kernel],
      variableNames: [...bnNames, "sums", lastName],
      outputSize,
      fields: geo,
    });
    return run(backend, program, [...bn, sums, last], geo);
  };
  const dx = gather("conv_bn_relu_bwd_data_v1", size(t.x.shape), t.filter, "w");
  const dfilter = gather("conv_bn_relu_bwd_weight_v1", size(t.filter.shape), t.x, "x");
  // The kernel's outputs are separate tensors: copy the two rows out (a 1-row "sum").
  const dbeta = sumPartials(backend, sums, 1, 2 * g.outC, 0, g.outC);
  const dgamma = sumPartials(backend, sums, 1, 2 * g.outC, g.outC, g.outC);
  backend.disposeData(sums.dataId);
  return [dx, dfilter, dgamma, dbeta];
}

/** Sums `numPartials` rows of `rowLen` floats, starting at `offset` in each row. */
function sumPartials(
  backend: WebGPUBackend,
  partials: TensorInfo,
  numPartials: number,
  rowLen: number,
  offset: number,
  count: number,
): TensorInfo {
  const fields: Field[] = [
    ["numPartials", "i32", numPartials],
    ["rowLen", "i32", rowLen],
    ["offset", "i32", offset],
    ["count", "i32", count],
  ];
  const program = new ConvBnReluBwdProgram({
    kernels: ["conv_bn_relu_bwd_sum_partials"],
    variableNames: ["partials"],
    outputSize: count,
    fields,
  });
  return run(backend, program, [partials], fields);
}

/** Splits `total` items into chunks so that about `target` chunks exist, each >= `minChunk`. */
function chunking(total: number, target: number, minChunk: number) {
  const chunks = Math.max(1, Math.min(target, Math.floor(total / minChunk)));
  const per = Math.ceil(total / chunks);
  return { per, count: Math.ceil(total / per) };
}

function runFast(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  tuning: BwdTuning,
) {
  const geo = geometryFields(g);
  const rows = g.batch * g.outH * g.outW;
  const bn = [t.dy, t.z, t.stats, t.gamma, t.beta];
  const bnNames = ["dy", "z", "stats", "gamma", "beta"];

  // Pass 1: per-channel sums (row chunks of >= 64 rows; 8 partial rows per chunk).
  const cBlocks = Math.ceil(g.outC / 8);
  const rowChunks = chunking(rows, Math.ceil(tuning.targetWorkgroups / cBlocks), 64);
  const chunkFields: Field[] = [...geo, ["rowsPerChunk", "i32", rowChunks.per]];
  const chunkGrid = {
    dispatch: [cBlocks, rowChunks.count, 1] as [number, number, number],
    workgroupSize: [8, 8, 1] as [number, number, number],
  };
  const partials = run(
    backend,
    new ConvBnReluBwdProgram({
      kernels: ["conv_bn_relu_bwd_reduce"],
      variableNames: bnNames,
      outputSize: rowChunks.count * 8 * 2 * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
    }),
    bn,
    chunkFields,
  );
  const numPartials = rowChunks.count * 8;
  const dbeta = sumPartials(backend, partials, numPartials, 2 * g.outC, 0, g.outC);
  const dgamma = sumPartials(backend, partials, numPartials, 2 * g.outC, g.outC, g.outC);
  backend.disposeData(partials.dataId);

  // Pass 2: dz, materialised once.
  const dz = run(
    backend,
    new ConvBnReluBwdProgram({
      kernels: ["conv_bn_relu_bwd_dz"],
      variableNames: [...bnNames, "dbeta", "dgamma"],
      outputSize: rows * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
    }),
    [...bn, dbeta, dgamma],
    chunkFields,
  );

  // Pass 3: dx.
  const numPix = g.batch * g.inH * g.inW;
  const dataVC = Math.max(1, Math.min(tuning.dataVC, Math.ceil(g.inC / 4)));
  const dx = run(
    backend,
    new ConvBnReluBwdProgram({
      kernels: ["conv_bn_relu_bwd_data"],
      variableNames: ["dz", "w"],
      outputSize: numPix * g.inC,
      fields: geo,
      grid: {
        dispatch: [Math.min(Math.ceil(numPix / 64), 65535), Math.ceil(g.inC / (4 * dataVC)), 1],
        workgroupSize: [64, 1, 1],
      },
      constants: { VC: dataVC },
    }),
    [dz, t.filter],
    geo,
  );

  // Pass 4: dfilter partials over slices of whole output rows, then their sum.
  const filterRows = g.kH * g.kW * g.inC;
  const weightVC = Math.max(1, Math.min(tuning.weightVC, Math.ceil(g.outC / 4)));
  const tiles = Math.ceil(filterRows / 64) * Math.ceil(g.outC / (4 * weightVC));
  const splits = chunking(g.batch * g.outH, Math.ceil(tuning.targetWorkgroups / tiles), 1);
  const splitFields: Field[] = [...geo, ["rowsPerSplit", "i32", splits.per]];
  const weightPartials = run(
    backend,
    new ConvBnReluBwdProgram({
      kernels: ["conv_bn_relu_bwd_weight"],
      variableNames: ["dz", "x"],
      outputSize: splits.count * filterRows * g.outC,
      fields: splitFields,
      grid: {
        dispatch: [
          Math.ceil(filterRows / 64),
          Math.ceil(g.outC / (4 * weightVC)),
          splits.count,
        ],
        workgroupSize: [64, 1, 1],
      },
      constants: { VC: weightVC },
    }),
    [dz, t.x],
    splitFields,
  );
  backend.disposeData(dz.dataId);
  let dfilter = weightPartials;
  if (splits.count > 1) {
    const count = filterRows * g.outC;
    dfilter = sumPartials(backend, weightPartials, splits.count, count, 0, count);
    backend.disposeData(weightPartials.dataId);
  }
  return [dx, dfilter, dgamma, dbeta];
}
