// WebGPU side of the fused conv + batch-norm + ReLU backward (the kernel registrations live in
// conv_bn_relu_grad.ts). Passes:
//   1. reduce:  per-channel partial sums of g and g*xhat over the row chunks of the chunked grid
//      (bn_chunk_grid.ts) -> (4 + 2P, Cout): the per-channel factors, then one row pair per
//      chunk, its 8 row lanes added in workgroup memory (src/ops/conv_bn_relu/bn_relu_bwd_reduce.wgsl).
//   2. dz:      one multi-output dispatch (src/ops/conv_bn_relu/bn_relu_bwd_dz.wgsl): every workgroup merges
//      the partials of its channels (dz needs the grid-wide sums), row chunk 0 writes dbeta and
//      dgamma, then each workgroup materialises dz (M, Cout) over its rows; both convolution
//      backprops read it. No sums dispatch between the two: one dispatch less per layer with dz.
//      Computing dz on the fly inside the convolutions would redo the batch-norm math (6 loads:
//      dy, z + 4 per-channel factors) at every read, KH*KW times per element in dx, and on
//      llvmpipe loads cost as much as the FMAs they feed.
//      Measured, llvmpipe (LLVM 15.0.6, 2 busy cores), batch 128, GPU ms (timestamps), reduce +
//      separate sums + dz vs reduce + dz, one process alternating, min of 21 / of 15 (two runs):
//      28x28x32 10.84 / 11.76 -> 8.68 / 8.25, 14x14x64 5.79 / 5.00 -> 4.31 / 3.74. The gain is
//      the rows: each row lane now takes a contiguous eighth of its chunk instead of every 8th
//      row (src/ops/wgsl/bn_chunk_rows.wgsl), which roughly halved the dz loop; the merge itself
//      costs 2*P/8 loads per invocation. With 8 partial rows per chunk (no workgroup-memory add
//      in the reduce) the dz pass took 5.2 / 2.9 ms instead of 4.4 / 2.2 (min of 15, another run).
//   3. dfilter: the generated bwdFilter view (conv/gemm.ts), slices + sum_partials.
//   4. dx:      the generated bwdData view, only when asked for (`runBackpropData`): the
//      gradient of ConvBnReluTrain computes dx in the x thunk, which tfjs calls only when x
//      leads to a variable, so the model-input layer (x = the images) never pays for it.
// A layer built with `inputGradient: false` (the model-input layer) goes further: no dz pass at
// all, the filter pass computes dz as it loads it (convBnReluFilterGradsWebGPU); dbeta, dgamma
// and the terms it needs (src/ops/conv_bn_relu/bn_relu_bwd_terms.wgsl) come from one BnReluBwdSums dispatch
// over pass 1's partials: at batch 128, 28x28 1->32 a dz pass cost 7.3 of that layer's 32 ms
// of kernel time.
// Naive oracle (FMNIST_NAIVE_KERNELS flag, src/flags.ts): bn_relu_bwd_reduce_naive (one
// partial row: the whole sums), the same dz pass, conv_bwd_data_naive and conv_bwd_filter_naive
// (one output element per invocation).
// Every input is bound as a flat 1-D view; shapes travel as uniforms, one pipeline per config
// serves every batch size.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "../conv/geometry.ts";
import { runProgram, type Uniform } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { inputLoadFunctions, textureLoadsApply } from "../backend/texture_loads.ts";
import { useNaiveKernels } from "../../flags.ts";
import {
  MultiOutputProgram,
  type ProgramGrid,
  runMultiOutputProgram,
} from "../backend/webgpu_multi_output.ts";
import { convBackpropFilter, flat } from "../conv/gemm.ts";
import { GEOMETRY_FIELDS } from "../conv/gemm_wgsl.ts";
import { tileConfigFor, type TilePlan } from "../conv/tile_plan.ts";
import { runBackpropData, runBackpropFilter } from "../conv/passes.ts";
import { bnChunkGrid } from "./bn_chunk_grid.ts";

/** One uniform field: WGSL name, WGSL type, value. */
type Field = [name: string, type: "i32" | "f32", value: number];

const WORKGROUP = 64;

/** `alias V` / `const VW` of the kernels that read f32 or, when Cout % 4 == 0, vec4. */
function elementAlias(vec4: boolean): string {
  return vec4 ? "alias V = vec4<f32>;\nconst VW : i32 = 4;" : "alias V = f32;\nconst VW : i32 = 1;";
}

/** One backward kernel from kernels/<name>.wgsl: flat output, explicit or flat grid. */
abstract class BnReluBwdProgram implements WebGPUProgram {
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
    kernel: string;
    variableNames: string[];
    outputSize: number;
    fields: Field[];
    /** Explicit grid for kernels that map workgroupId themselves; default flat, 64 per group. */
    grid?: ProgramGrid;
    /** Bind inputs and the output as array<vec4<f32>> (sizes must be multiples of 4). */
    vec4?: boolean;
    /** The kernel's load_dy / load_z read textures (texture_loads.ts); else storage. */
    textured?: boolean;
  }) {
    this.outputShape = [opts.outputSize];
    this.variableNames = opts.variableNames;
    if (opts.vec4) {
      this.outputComponent = 4;
      this.variableComponents = opts.variableNames.map(() => 4);
    }
    this.uniforms = opts.fields.map(([name, type]) => `${name} : ${type},`).join(" ");
    this.shaderKey = `bnReluBwd_${opts.kernel.replace(/^.*\//, "").replace(/\.wgsl$/, "")}${
      opts.vec4 ? "_vec4" : ""
    }${opts.textured ? "_tex" : ""}`;
    this.source = [
      elementAlias(opts.vec4 ?? false),
      inputLoadFunctions(
        ["dy", "z"].filter((n) => opts.variableNames.includes(n)),
        "V",
        opts.textured ?? false,
      ),
      wgsl(opts.kernel),
    ].join("\n");
    if (opts.grid) {
      // Two axes: the backend calls `main()` (no flat index); the kernels read workgroupId.
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

// One subclass per kernel: tfjs labels pipelines and GPU timestamps with the class name.
class BnReluBwdReduceProgram extends BnReluBwdProgram {}
class BnReluBwdReduceNaiveProgram extends BnReluBwdProgram {}

/** Uniform values of `fields`, in order. */
function uniformsOf(fields: Field[]): Uniform[] {
  return fields.map(([, type, value]) => ({
    type: type === "i32" ? "int32" : "float32",
    data: [value],
  }));
}

function run(
  backend: WebGPUBackend,
  program: BnReluBwdProgram,
  inputs: TensorInfo[],
  fields: Field[],
): TensorInfo {
  return runProgram(backend, program, inputs.map(flat), uniformsOf(fields));
}

/** The conv geometry as i32 uniforms (GEOMETRY_FIELDS less the bwdFilter split pair), then 1/M. */
function geometryFields(g: ConvGeometry): Field[] {
  const names = GEOMETRY_FIELDS.filter(
    (f): f is Exclude<typeof f, "rowsPerSplit" | "numSplits"> =>
      f !== "rowsPerSplit" && f !== "numSplits",
  );
  return [
    ...names.map((f): Field => [f, "i32", g[f]]),
    ["invM", "f32", 1 / (g.batch * g.outH * g.outW)],
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

/**
 * dbeta, dgamma and the bnReluDz prologue's terms (bn_relu_bwd_terms.wgsl) from the reduce
 * pass's partials in one dispatch (bn_relu_bwd_sums.wgsl): the model-input layer's pass 2.
 */
class BnReluBwdSumsProgram extends MultiOutputProgram {
  readonly shaderKey = "bnReluBwdSumsTerms";
  readonly outputNames = ["dbeta", "dgamma", "terms"];
  readonly variableNames = ["partials"];
  override readonly uniforms = "numPartials : i32, invM : f32,";

  getUserCode(): string {
    return wgsl("conv_bn_relu/bn_relu_bwd_sums.wgsl") +
      wgsl("conv_bn_relu/bn_relu_bwd_terms.wgsl") +
      `\nfn main(c : i32) {\n  let s = channelSums(c);\n  dbeta[c] = s.x;\n  dgamma[c] = s.y;\n` +
      `  writeTerms(c, s);\n}\n`;
  }
}

/**
 * Pass 2: dz, dbeta and dgamma in one dispatch over the chunked grid, each workgroup merging the
 * reduce pass's partials for its channels (src/ops/conv_bn_relu/bn_relu_bwd_dz.wgsl).
 */
class BnReluBwdDzProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames = ["dz", "dbeta", "dgamma"];
  readonly variableNames = ["dy", "z", "partials"];
  override readonly uniforms: string;
  override readonly grid: ProgramGrid;
  override readonly vec4: boolean;
  /** dy and z through textures (texture_loads.ts). */
  private readonly textured: boolean;

  constructor(fields: Field[], grid: ProgramGrid, vec4: boolean, textured: boolean) {
    super();
    this.uniforms = fields.map(([name, type]) => `${name} : ${type},`).join(" ");
    this.grid = grid;
    this.vec4 = vec4;
    this.textured = textured;
    this.shaderKey = `bnReluBwdDz${vec4 ? "_vec4" : ""}${textured ? "_tex" : ""}`;
  }

  getUserCode(): string {
    return [
      elementAlias(this.vec4),
      inputLoadFunctions(["dy", "z"], "V", this.textured),
      wgsl("conv_bn_relu/bn_relu_bwd_dz.wgsl"),
    ]
      .join("\n");
  }
}

/**
 * [dbeta, dgamma] (Cout each): sums of the `numPartials` chunk rows of `partials`, and the
 * (7, Cout) terms of the bnReluDz prologue. Releases `partials`.
 */
function bnSumsAndTerms(
  backend: WebGPUBackend,
  partials: TensorInfo,
  numPartials: number,
  outC: number,
  invM: number,
): { dbeta: TensorInfo; dgamma: TensorInfo; terms: TensorInfo } {
  const [dbeta, dgamma, terms] = runMultiOutputProgram(
    backend,
    new BnReluBwdSumsProgram(),
    [[outC], [outC], [7 * outC]],
    [flat(partials)],
    outC,
    [{ type: "int32", data: [numPartials] }, { type: "float32", data: [invM] }],
  );
  backend.disposeData(partials.dataId);
  return { dbeta, dgamma, terms };
}

/**
 * Pass 1's output: `partials` (4 + 2 * numPartials, Cout), rows mean / invStd / gamma / beta,
 * then the per-chunk sums (src/ops/conv_bn_relu/bn_relu_bwd_reduce.wgsl), and the grid it used.
 */
interface BnPartials {
  partials: TensorInfo;
  numPartials: number;
  chunkFields: Field[];
  chunkGrid: ProgramGrid;
  vec4: boolean;
}

/** Whether the chunked passes read dy and z (of `elements` floats) through textures. */
function texturedBn(vec4: boolean, elements: number): boolean {
  return textureLoadsApply(vec4 ? 4 : 1, elements);
}

/** Pass 1: the per-chunk sums of g and g * xhat (one row, the whole sums, on the naive path). */
function bnReluPartials(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
): BnPartials {
  const geo = geometryFields(g);
  const rows = g.batch * g.outH * g.outW;
  const bn = [t.dy, t.z, t.stats, t.gamma, t.beta];
  const bnNames = ["dy", "z", "stats", "gamma", "beta"];
  const grid = bnChunkGrid(rows, g.outC);
  const bnVec4 = grid.vec4;
  const chunkFields: Field[] = [...geo, ["rowsPerChunk", "i32", grid.rowsPerChunk]];
  const chunkGrid: ProgramGrid = { workgroupSize: grid.workgroupSize, dispatch: grid.dispatch };
  const passes = { chunkFields, chunkGrid, vec4: bnVec4 };
  if (useNaiveKernels()) {
    // One chunk: the factors, then dbeta; dgamma, one invocation per channel over all rows.
    const partials = run(
      backend,
      new BnReluBwdReduceNaiveProgram({
        kernel: "conv_bn_relu/bn_relu_bwd_reduce_naive.wgsl",
        variableNames: bnNames,
        outputSize: 6 * g.outC,
        fields: geo,
      }),
      bn,
      geo,
    );
    return { partials, numPartials: 1, ...passes };
  }
  const numPartials = grid.chunks;
  const partials = run(
    backend,
    new BnReluBwdReduceProgram({
      kernel: "conv_bn_relu/bn_relu_bwd_reduce.wgsl",
      variableNames: bnNames,
      outputSize: (4 + 2 * numPartials) * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
      vec4: bnVec4,
      textured: texturedBn(bnVec4, rows * g.outC),
    }),
    bn,
    chunkFields,
  );
  return { partials, numPartials, ...passes };
}

/** Passes 1-2: dz (M * Cout), dbeta and dgamma (Cout). */
function bnReluDz(backend: WebGPUBackend, t: ConvBnReluGradTensors, g: ConvGeometry) {
  const p = bnReluPartials(backend, t, g);
  const rows = g.batch * g.outH * g.outW;
  const fields: Field[] = [...p.chunkFields, ["numPartials", "i32", p.numPartials]];
  const [dz, dbeta, dgamma] = runMultiOutputProgram(
    backend,
    new BnReluBwdDzProgram(
      fields,
      p.chunkGrid,
      p.vec4,
      texturedBn(p.vec4, rows * g.outC),
    ),
    [[rows * g.outC], [g.outC], [g.outC]],
    [t.dy, t.z, p.partials].map(flat),
    rows * g.outC,
    uniformsOf(fields),
  );
  backend.disposeData(p.partials.dataId);
  return { dz, dbeta, dgamma };
}

/** Per-channel results (dgamma, dbeta) as (Cout) tensors. */
function channelVectors(g: ConvGeometry, ...ts: TensorInfo[]): TensorInfo[] {
  return ts.map((t) => ({ dataId: t.dataId, shape: [g.outC], dtype: "float32" }));
}

/**
 * Backward for a layer whose dx nobody needs: [dfilter, dgamma, dbeta], with dz computed inside
 * the filter pass (the generator's bnReluDz prologue) instead of a dz pass, on register configs;
 * staged and Winograd configs and the naive oracle materialise dz as usual.
 */
export function convBnReluFilterGradsWebGPU(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo[] {
  const config = tileConfigFor(plan, "bwdFilter", g, backend);
  if (useNaiveKernels() || config.stageInWorkgroupMemory || config.winograd) {
    const [dz, ...rest] = convBnReluParamGradsWebGPU(backend, t, g, plan);
    backend.disposeData(dz.dataId);
    return rest;
  }
  const p = bnReluPartials(backend, t, g);
  const invM = 1 / (g.batch * g.outH * g.outW);
  const sums = bnSumsAndTerms(backend, p.partials, p.numPartials, g.outC, invM);
  const { dbeta, dgamma, terms } = sums;
  const dfilter = convBackpropFilter(backend, { dy: t.dy, z: t.z, terms }, t.x, g, config);
  backend.disposeData(terms.dataId);
  return [dfilter, ...channelVectors(g, dgamma, dbeta)];
}

/**
 * Backward without dx: [dz (N, Ho, Wo, Cout), dfilter, dgamma, dbeta]. dz stays available for
 * runBackpropData when dx turns out to be needed.
 */
export function convBnReluParamGradsWebGPU(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo[] {
  const { dz, dbeta, dgamma } = bnReluDz(backend, t, g);
  const dfilter = runBackpropFilter(backend, dz, t.x, g, plan);
  const zShape = [g.batch, g.outH, g.outW, g.outC];
  return [
    { dataId: dz.dataId, shape: zShape, dtype: "float32" },
    dfilter,
    ...channelVectors(g, dgamma, dbeta),
  ];
}

/** The whole backward on the webgpu backend: [dx, dfilter, dgamma, dbeta]. */
export function convBnReluTrainGradWebGPU(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo[] {
  const [dz, dfilter, dgamma, dbeta] = convBnReluParamGradsWebGPU(backend, t, g, plan);
  const dx = runBackpropData(backend, dz, t.filter, g, plan);
  backend.disposeData(dz.dataId);
  return [dx, dfilter, dgamma, dbeta];
}
