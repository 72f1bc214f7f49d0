// WebGPU side of the fused conv + batch-norm + ReLU backward (the kernel registrations live in
// conv_bn_relu_grad.ts). Passes:
//   1. reduce:  per-channel partial sums of g and g*xhat over row chunks -> (P*8, 2, Cout);
//      bn_relu_bwd_sums -> dbeta and dgamma in one multi-output dispatch (two sum_partials
//      dispatches until then: enhanced's step 79 -> 75). dz needs these grid-wide sums before
//      it exists.
//   2. dz:      materialise dz (M, Cout) once (kernels/bn_relu_bwd_dz.wgsl); both convolution
//      backprops read it. Computing it on the fly inside them would redo the batch-norm math
//      (6 loads: dy, z + 4 per-channel factors) at every read, KH*KW times per element in dx,
//      and on llvmpipe loads cost as much as the FMAs they feed; the pass costs ~3% of the
//      backward (bench/conv_bn_relu_bwd_probe.ts prints the split).
//   3. dfilter: the generated bwdFilter view (conv_gemm.ts), slices + sum_partials.
//   4. dx:      the generated bwdData view, only when asked for (`runBackpropData`): the
//      gradient of ConvBnReluTrain computes dx in the x thunk, which tfjs calls only when x
//      leads to a variable, so the model-input layer (x = the images) never pays for it.
// A layer built with `inputGradient: false` (the model-input layer) goes further: no dz pass at
// all, the filter pass computes dz as it loads it (convBnReluFilterGradsWebGPU; the terms it
// needs packed by kernels/bn_relu_bwd_terms.wgsl, in pass 1's sums dispatch since that one
// writes several outputs: enhanced's step 71 -> 70): at batch 128, 28x28 1->32 that pass cost
// 7.3 of the layer's 32 ms of kernel time.
// Naive oracle (FMNIST_NAIVE_KERNELS flag, kernel_flags.ts): bn_relu_bwd_reduce_naive, the same
// dz pass, conv_bwd_data_naive and conv_bwd_filter_naive (one output element per invocation).
// Every input is bound as a flat 1-D view; shapes travel as uniforms, one pipeline per config
// serves every batch size.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./conv_geometry.ts";
import { kernelSource, runProgram, type Uniform } from "./webgpu_program.ts";
import { useNaiveKernels } from "./kernel_flags.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "./webgpu_multi_output.ts";
import { convBackpropFilter, flat } from "./conv_gemm.ts";
import { GEOMETRY_FIELDS } from "./conv_gemm_wgsl.ts";
import { resolveTileConfig } from "./conv_tiling.ts";
import { runBackpropData, runBackpropFilter } from "./conv_passes.ts";

/** One uniform field: WGSL name, WGSL type, value. */
type Field = [name: string, type: "i32" | "f32", value: number];

const WORKGROUP = 64;

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
    grid?: { dispatch: [number, number, number]; workgroupSize: [number, number, number] };
    /** Bind inputs and the output as array<vec4<f32>> (sizes must be multiples of 4). */
    vec4?: boolean;
  }) {
    this.outputShape = [opts.outputSize];
    this.variableNames = opts.variableNames;
    if (opts.vec4) {
      this.outputComponent = 4;
      this.variableComponents = opts.variableNames.map(() => 4);
    }
    this.uniforms = opts.fields.map(([name, type]) => `${name} : ${type},`).join(" ");
    this.shaderKey = `bnReluBwd_${opts.kernel}${opts.vec4 ? "_vec4" : ""}`;
    const element = opts.vec4
      ? "alias V = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias V = f32;\nconst VW : i32 = 1;";
    this.source = [element, kernelSource(opts.kernel)].join("\n");
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
class BnReluBwdDzProgram extends BnReluBwdProgram {}
class BnReluBwdReduceNaiveProgram extends BnReluBwdProgram {}

function run(
  backend: WebGPUBackend,
  program: BnReluBwdProgram,
  inputs: TensorInfo[],
  fields: Field[],
): TensorInfo {
  const uniforms: Uniform[] = fields.map(([, type, value]) => ({
    type: type === "i32" ? "int32" : "float32",
    data: [value],
  }));
  return runProgram(backend, program, inputs.map(flat), uniforms);
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

/** Workgroups the split per-channel reductions aim for (fills llvmpipe's threads). */
const TARGET_WORKGROUPS = 64;

/**
 * dbeta and dgamma from the reduce pass's partials in one dispatch (bn_relu_bwd_sums.wgsl);
 * `withTerms` also writes the bnReluDz prologue's terms (bn_relu_bwd_terms.wgsl).
 */
class BnReluBwdSumsProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames: string[];
  override readonly uniforms: string;
  private readonly withTerms: boolean;

  constructor(withTerms: boolean) {
    super();
    this.withTerms = withTerms;
    this.shaderKey = withTerms ? "bnReluBwdSumsTerms" : "bnReluBwdSums";
    this.outputNames = withTerms ? ["dbeta", "dgamma", "terms"] : ["dbeta", "dgamma"];
    this.variableNames = withTerms ? ["partials", "stats", "gamma", "beta"] : ["partials"];
    this.uniforms = withTerms ? "numPartials : i32, invM : f32," : "numPartials : i32,";
  }

  getUserCode(): string {
    const terms = this.withTerms ? "\n  writeTerms(c, s);" : "";
    return kernelSource("bn_relu_bwd_sums") +
      (this.withTerms ? kernelSource("bn_relu_bwd_terms") : "") +
      `\nfn main(c : i32) {\n  let s = channelSums(c);\n  dbeta[c] = s.x;\n  dgamma[c] = s.y;${terms}\n}\n`;
  }
}

/** The batch-norm inputs the terms are packed from, and 1/M. */
interface TermsInputs {
  stats: TensorInfo;
  gamma: TensorInfo;
  beta: TensorInfo;
  invM: number;
}

/**
 * [dbeta, dgamma] (Cout each): sums of the `numPartials` rows (2, Cout) of `partials`; with
 * `termsFrom`, also the (7, Cout) terms of the bnReluDz prologue. Releases `partials`.
 */
function bnSums(
  backend: WebGPUBackend,
  partials: TensorInfo,
  numPartials: number,
  outC: number,
  termsFrom?: TermsInputs,
): { dbeta: TensorInfo; dgamma: TensorInfo; terms?: TensorInfo } {
  const t = termsFrom;
  const [dbeta, dgamma, terms] = runMultiOutputProgram(
    backend,
    new BnReluBwdSumsProgram(t !== undefined),
    t ? [[outC], [outC], [7 * outC]] : [[outC], [outC]],
    t ? [partials, t.stats, t.gamma, t.beta].map(flat) : [flat(partials)],
    outC,
    t
      ? [{ type: "int32", data: [numPartials] }, { type: "float32", data: [t.invM] }]
      : [{ type: "int32", data: [numPartials] }],
  );
  backend.disposeData(partials.dataId);
  return { dbeta, dgamma, terms };
}

/** Splits `total` items into chunks so that about `target` chunks exist, each >= `minChunk`. */
function chunking(total: number, target: number, minChunk: number) {
  const chunks = Math.max(1, Math.min(target, Math.floor(total / minChunk)));
  const per = Math.ceil(total / chunks);
  return { per, count: Math.ceil(total / per) };
}

/**
 * dbeta, dgamma (pass 1) and dz (pass 2); with `withDz` false, instead of dz the terms the
 * bwdFilter kernel's bnReluDz prologue reads (written by pass 1).
 */
function bnReluBackward(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
  withDz = true,
) {
  const geo = geometryFields(g);
  const rows = g.batch * g.outH * g.outW;
  const bn = [t.dy, t.z, t.stats, t.gamma, t.beta];
  const bnNames = ["dy", "z", "stats", "gamma", "beta"];
  let dbeta: TensorInfo, dgamma: TensorInfo, terms: TensorInfo | undefined;
  const termsFrom = withDz
    ? undefined
    : { stats: t.stats, gamma: t.gamma, beta: t.beta, invM: 1 / rows };
  // Lanes own groups of 4 channels (vec4) when Cout % 4 == 0.
  const bnVec4 = g.outC % 4 === 0;
  const cBlocks = Math.ceil(g.outC / (bnVec4 ? 32 : 8));
  const rowChunks = chunking(rows, Math.ceil(TARGET_WORKGROUPS / cBlocks), 64);
  const chunkFields: Field[] = [...geo, ["rowsPerChunk", "i32", rowChunks.per]];
  const chunkGrid = {
    dispatch: [cBlocks, rowChunks.count, 1] as [number, number, number],
    workgroupSize: [8, 8, 1] as [number, number, number],
  };
  if (useNaiveKernels()) {
    // (2, Cout) = dbeta; dgamma, one invocation per channel over all rows.
    const sums = run(
      backend,
      new BnReluBwdReduceNaiveProgram({
        kernel: "bn_relu_bwd_reduce_naive",
        variableNames: bnNames,
        outputSize: 2 * g.outC,
        fields: geo,
      }),
      bn,
      geo,
    );
    ({ dbeta, dgamma, terms } = bnSums(backend, sums, 1, g.outC, termsFrom));
  } else {
    const partials = run(
      backend,
      new BnReluBwdReduceProgram({
        kernel: "bn_relu_bwd_reduce",
        variableNames: bnNames,
        outputSize: rowChunks.count * 8 * 2 * g.outC,
        fields: chunkFields,
        grid: chunkGrid,
        vec4: bnVec4,
      }),
      bn,
      chunkFields,
    );
    ({ dbeta, dgamma, terms } = bnSums(
      backend,
      partials,
      rowChunks.count * 8,
      g.outC,
      termsFrom,
    ));
  }
  if (!withDz) return { dz: undefined, dbeta, dgamma, terms };
  const dz = run(
    backend,
    new BnReluBwdDzProgram({
      kernel: "bn_relu_bwd_dz",
      variableNames: [...bnNames, "dbeta", "dgamma"],
      outputSize: rows * g.outC,
      fields: chunkFields,
      grid: chunkGrid,
      vec4: bnVec4,
    }),
    [...bn, dbeta, dgamma],
    chunkFields,
  );
  return { dz, dbeta, dgamma };
}

/** Per-channel results (dgamma, dbeta) as (Cout) tensors. */
function channelVectors(g: ConvGeometry, ...ts: TensorInfo[]): TensorInfo[] {
  return ts.map((t) => ({ dataId: t.dataId, shape: [g.outC], dtype: "float32" }));
}

/**
 * Backward for a layer whose dx nobody needs: [dfilter, dgamma, dbeta], with dz computed inside
 * the filter pass (the generator's bnReluDz prologue) instead of a dz pass, on register configs;
 * staged configs and the naive oracle materialise dz as usual.
 */
export function convBnReluFilterGradsWebGPU(
  backend: WebGPUBackend,
  t: ConvBnReluGradTensors,
  g: ConvGeometry,
): TensorInfo[] {
  const config = resolveTileConfig("bwdFilter", g);
  if (useNaiveKernels() || config.stageInWorkgroupMemory) {
    const [dz, ...rest] = convBnReluParamGradsWebGPU(backend, t, g);
    backend.disposeData(dz.dataId);
    return rest;
  }
  const { dbeta, dgamma, terms } = bnReluBackward(backend, t, g, false);
  if (!terms) throw new Error("unreachable: terms requested");
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
): TensorInfo[] {
  const { dz, dbeta, dgamma } = bnReluBackward(backend, t, g);
  if (!dz) throw new Error("unreachable: dz requested");
  const dfilter = runBackpropFilter(backend, dz, t.x, g);
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
): TensorInfo[] {
  const [dz, dfilter, dgamma, dbeta] = convBnReluParamGradsWebGPU(backend, t, g);
  const dx = runBackpropData(backend, dz, t.filter, g);
  backend.disposeData(dz.dataId);
  return [dx, dfilter, dgamma, dbeta];
}
