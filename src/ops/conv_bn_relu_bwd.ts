// WebGPU programs of the fused conv + batch-norm + ReLU backward and the logic that dispatches
// them (the kernel registration lives in conv_bn_relu_grad.ts). WGSL bodies: kernels/
// conv_bn_relu_bwd_*.wgsl, each with a header giving bindings, layouts, grid mapping, versions.
//
// Passes (fast path: 4 main passes + small finalizes):
//   1. reduce:  per-channel partial sums of g and g*xhat over row chunks  -> (P*8, 2, Cout);
//      sum_partials twice -> dbeta, dgamma (Cout). dx and dfilter both need these grid-wide sums
//      before any dz exists, hence a pass of their own.
//   2. dz:      materialise dz (M, Cout) once; both convolution backprops read it. Recomputing it
//      inside them would redo the batch-norm math (6 loads: dy, z + 4 per-channel factors) at
//      every read, and on llvmpipe every load costs about the same as the FMAs it feeds; the
//      extra pass costs ~3% of the backward (58 of 2080 GPU ms at x=[128,28,28,32],
//      w=[3,3,32,32]; bench/conv_bn_relu_bwd_probe.ts prints the per-pass split).
//   3. data:    dx = conv2d backprop-input of dz (filter_t first transposes the small filter so
//      4 input channels are one vec4).
//   4. weight:  dfilter partials over S slices of the M reduction -> (S, KH*KW*Cin, Cout);
//      sum_partials -> dfilter (skipped when S = 1).
// Passes 3-4 use vec4 loads when Cin and Cout are multiples of 4, else the scalar _v2 kernels.
// Naive path (FMNIST_NAIVE_KERNELS=1): reduce_v1 (packed sums), data_v1 and weight_v1, which
// compute dz on the fly; kept as oracle and fallback. A program binds at most 8 storage buffers
// (WebGPU default limit), output included.
//
// Every input is bound as a flat 1-D view and every output is produced flat and relabelled, so
// shapes reach the GPU only as uniforms and one pipeline serves every batch size; shader keys
// hold compile-time facts only (kernel files, tile constants, vec4 or scalar).

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./conv_geometry.ts";
import { kernelSource, runProgram, type Uniform } from "./webgpu_program.ts";
import { useNaiveKernels } from "./conv_bn_relu_fwd.ts";

/** One uniform field: WGSL name, WGSL type, value. */
type Field = [name: string, type: "i32" | "f32", value: number];

const WORKGROUP = 64;

/** One backward kernel: WGSL sources (helpers first), flat output, explicit or flat grid. */
abstract class ConvBnReluBwdProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableNames: string[];
  uniforms: string;
  outputComponent?: number;
  variableComponents?: number[];
  private readonly source: string;

  constructor(opts: {
    /** kernels/<name>.wgsl files, concatenated in order (helpers before the kernel). */
    kernels: string[];
    variableNames: string[];
    outputSize: number;
    fields: Field[];
    /** Explicit grid for kernels that map workgroupId themselves; default flat, 64 per group. */
    grid?: { dispatch: [number, number, number]; workgroupSize: [number, number, number] };
    /** Compile-time constants (`const TR : i32 = 4;`), part of the shader key. */
    constants?: Record<string, number>;
    /** Bind inputs and the output as array<vec4<f32>> (sizes must be multiples of 4). */
    vec4?: boolean;
  }) {
    const constants = Object.entries(opts.constants ?? {});
    this.outputShape = [opts.outputSize];
    this.variableNames = opts.variableNames;
    if (opts.vec4) {
      this.outputComponent = 4;
      this.variableComponents = opts.variableNames.map(() => 4);
    }
    this.uniforms = opts.fields.map(([name, type]) => `${name} : ${type},`).join(" ");
    this.shaderKey = `cbr_bwd_${opts.kernels.join("+")}_${opts.vec4 ? "vec4_" : ""}${
      constants.map(([k, v]) => `${k}${v}`).join("_")
    }`;
    // V / VW: the element type of every binding (see conv_bn_relu_bwd_reduce.wgsl).
    const element = opts.vec4
      ? "alias V = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias V = f32;\nconst VW : i32 = 1;";
    this.source = [
      element,
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

// One subclass per kernel: tfjs labels pipelines and GPU timestamps (tf.time's per-program
// breakdown) with the program's class name.
class BwdReduceProgram extends ConvBnReluBwdProgram {}
class BwdSumPartialsProgram extends ConvBnReluBwdProgram {}
class BwdDzProgram extends ConvBnReluBwdProgram {}
class BwdFilterTransposeProgram extends ConvBnReluBwdProgram {}
class BwdDataProgram extends ConvBnReluBwdProgram {}
class BwdWeightProgram extends ConvBnReluBwdProgram {}
class BwdReduceNaiveProgram extends ConvBnReluBwdProgram {}
class BwdDataNaiveProgram extends ConvBnReluBwdProgram {}
class BwdWeightNaiveProgram extends ConvBnReluBwdProgram {}

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

/** Register tiles of the fast path (the probe script sweeps them; defaults = measured best). */
export interface BwdTuning {
  /** dx, vec4 kernel: pixels (TR) x vec4s of input channels (TV) per invocation. */
  dataTR: number;
  dataTV: number;
  /** dfilter, vec4 kernel: quads of filter rows (TQ) x vec4s of output channels (TV). */
  weightTQ: number;
  weightTV: number;
  /** Workgroups the split reductions aim for (fills llvmpipe's threads with room to balance). */
  targetWorkgroups: number;
}

// Won the sweeps on llvmpipe at the enhanced CNN's shapes (kernel headers give the numbers): dx
// 4 pixels x 2 vec4 (8 accumulators; 16 spill), dfilter 8 rows x 2 vec4 (16 accumulators: its
// per-pixel address work needs the bigger tile to amortise; weight/data time 0.55-0.8 vs 0.9-1.4
// for 4 rows x 2 vec4, same runs).
export const DEFAULT_TUNING: BwdTuning = {
  dataTR: 4,
  dataTV: 2,
  weightTQ: 2,
  weightTV: 2,
  targetWorkgroups: 64,
};
// Scalar fallbacks (channels not multiples of 4): best of their own sweep.
const SCALAR_DATA = { TR: 8, TV: 2 };
const SCALAR_WEIGHT = { TR: 4, TV: 2 };

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
  const sumsProgram = new BwdReduceNaiveProgram({
    kernels: ["conv_bn_relu_bwd_reduce_v1"],
    variableNames: bnNames,
    outputSize: 2 * g.outC,
    fields: geo,
  });
  const sums = run(backend, sumsProgram, bn, geo);
  const gather = (
    Program: typeof BwdDataNaiveProgram,
    kernel: string,
    outputSize: number,
    last: TensorInfo,
    lastName: string,
  ) => {
    const program = new Program({
      kernels: ["conv_bn_relu_bwd_bn_fn", kernel],
      variableNames: [...bnNames, "sums", lastName],
      outputSize,
      fields: geo,
    });
    return run(backend, program, [...bn, sums, last], geo);
  };
  const dx = gather(
    BwdDataNaiveProgram,
    "conv_bn_relu_bwd_data_v1",
    size(t.x.shape),
    t.filter,
    "w",
  );
  const dfilter = gather(
    BwdWeightNaiveProgram,
    "conv_bn_relu_bwd_weight_v1",
    size(t.filter.shape),
    t.x,
    "x",
  );
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
  const program = new BwdSumPartialsProgram({
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

  // Pass 1: per-channel sums (row chunks of >= 64 rows; 8 partial rows per chunk). Lanes own
  // groups of 4 channels (vec4) when Cout % 4 == 0.
  const bnVec4 = g.outC % 4 === 0;
  const cBlocks = Math.ceil(g.outC / (bnVec4 ? 32 : 8));
  const rowChunks = chunking(rows, Math.ceil(tuning.targetWorkgroups / cBlocks), 64);
  const chunkFields: Field[] = [...geo, ["rowsPerChunk", "i32", rowChunks.per]];
  const chunkGrid = {
    dispatch: [cBlocks, rowChunks.count, 1] as [number, number, number],
    workgroupSize: [8, 8, 1] as [number, number, number],
  };
  const partials = run(
    backend,
    new BwdReduceProgram({
      kernels: ["conv_bn_relu_bwd_reduce"],
      variableNames: bnNames,
      outputSize: rowChunks.count * 8 * 2 * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
      vec4: bnVec4,
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
    new BwdDzProgram({
      kernels: ["conv_bn_relu_bwd_dz"],
      variableNames: [...bnNames, "dbeta", "dgamma"],
      outputSize: rows * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
      vec4: bnVec4,
    }),
    [...bn, dbeta, dgamma],
    chunkFields,
  );

  const vec4 = g.inC % 4 === 0 && g.outC % 4 === 0;
  const dx = vec4
    ? runDataVec4(backend, dz, t.filter, g, tuning)
    : runDataScalar(backend, dz, t.filter, g);
  const weightPartials = vec4
    ? runWeightVec4(backend, dz, t.x, g, tuning)
    : runWeightScalar(backend, dz, t.x, g, tuning);
  backend.disposeData(dz.dataId);
  let dfilter = weightPartials.partials;
  if (weightPartials.splits > 1) {
    const count = size(t.filter.shape);
    dfilter = sumPartials(backend, dfilter, weightPartials.splits, count, 0, count);
    backend.disposeData(weightPartials.partials.dataId);
  }
  return [dx, dfilter, dgamma, dbeta];
}

/** Blocks of 64*tr pixels on grid x (looping past the per-dimension limit), channel blocks on y. */
function dataGrid(g: ConvGeometry, tr: number, channelBlocks: number) {
  const pixelBlocks = Math.ceil((g.batch * g.inH * g.inW) / (64 * tr));
  return {
    dispatch: [Math.min(pixelBlocks, 65535), channelBlocks, 1] as [number, number, number],
    workgroupSize: [64, 1, 1] as [number, number, number],
  };
}

/** Pass 3, vec4: transpose the filter to (KH, KW, Cout, Cin), then dx. */
function runDataVec4(
  backend: WebGPUBackend,
  dz: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  tuning: BwdTuning,
): TensorInfo {
  const geo = geometryFields(g);
  const wt = run(
    backend,
    new BwdFilterTransposeProgram({
      kernels: ["conv_bn_relu_bwd_filter_t"],
      variableNames: ["w"],
      outputSize: size(filter.shape),
      fields: geo,
    }),
    [filter],
    geo,
  );
  const tv = Math.min(tuning.dataTV, g.inC / 4);
  const dx = run(
    backend,
    new BwdDataProgram({
      kernels: ["conv_bn_relu_bwd_data"],
      variableNames: ["dz", "w"],
      outputSize: g.batch * g.inH * g.inW * g.inC,
      fields: geo,
      grid: dataGrid(g, tuning.dataTR, Math.ceil(g.inC / 4 / tv)),
      constants: { TR: tuning.dataTR, TV: tv },
      vec4: true,
    }),
    [dz, wt],
    geo,
  );
  backend.disposeData(wt.dataId);
  return dx;
}

/** Pass 3, scalar fallback for channel counts that are not multiples of 4. */
function runDataScalar(
  backend: WebGPUBackend,
  dz: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  const geo = geometryFields(g);
  const tv = Math.min(SCALAR_DATA.TV, Math.ceil(g.inC / 4));
  return run(
    backend,
    new BwdDataProgram({
      kernels: ["conv_bn_relu_bwd_data_v2"],
      variableNames: ["dz", "w"],
      outputSize: g.batch * g.inH * g.inW * g.inC,
      fields: geo,
      grid: dataGrid(g, SCALAR_DATA.TR, Math.ceil(g.inC / (4 * tv))),
      constants: { TR: SCALAR_DATA.TR, TV: tv },
    }),
    [dz, filter],
    geo,
  );
}

/** Pass 4 with `tiles` invocation tiles: splits of the N*Ho output rows to fill the device. */
function weightPass(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  tuning: BwdTuning,
  tiles: number,
  kernel: { name: string; constants: Record<string, number>; vec4: boolean },
) {
  const groups = Math.ceil(tiles / 64);
  const splits = chunking(g.batch * g.outH, Math.ceil(tuning.targetWorkgroups / groups), 1);
  const fields: Field[] = [...geometryFields(g), ["rowsPerSplit", "i32", splits.per]];
  const partials = run(
    backend,
    new BwdWeightProgram({
      kernels: [kernel.name],
      variableNames: ["dz", "x"],
      outputSize: splits.count * g.kH * g.kW * g.inC * g.outC,
      fields,
      grid: { dispatch: [groups, 1, splits.count], workgroupSize: [64, 1, 1] },
      constants: kernel.constants,
      vec4: kernel.vec4,
    }),
    [dz, x],
    fields,
  );
  return { partials, splits: splits.count };
}

function runWeightVec4(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  tuning: BwdTuning,
) {
  const tv = Math.min(tuning.weightTV, g.outC / 4);
  const quads = (g.kH * g.kW * g.inC) / 4;
  const tiles = Math.ceil(quads / tuning.weightTQ) * Math.ceil(g.outC / 4 / tv);
  return weightPass(backend, dz, x, g, tuning, tiles, {
    name: "conv_bn_relu_bwd_weight",
    constants: { TQ: tuning.weightTQ, TV: tv },
    vec4: true,
  });
}

function runWeightScalar(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  tuning: BwdTuning,
) {
  const tv = Math.min(SCALAR_WEIGHT.TV, Math.ceil(g.outC / 4));
  const rows = g.kH * g.kW * g.inC;
  const tiles = Math.ceil(rows / SCALAR_WEIGHT.TR) * Math.ceil(g.outC / (4 * tv));
  return weightPass(backend, dz, x, g, tuning, tiles, {
    name: "conv_bn_relu_bwd_weight_v2",
    constants: { TR: SCALAR_WEIGHT.TR, TV: tv },
    vec4: false,
  });
}
