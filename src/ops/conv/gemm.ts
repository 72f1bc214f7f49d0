// Dispatch of the generated tiled convolution (WGSL from conv/gemm_wgsl.ts): runs the tile
// configuration its caller chose (conv/tile_plan.ts's tileConfigFor: pinned, autotuned or the
// adapter kind's default) with the vector widths the shape allows and its grid. One function
// per view:
//   convForward(x, w, epilogue)      z or y (N, Ho, Wo, Cout)
//   convBackpropData(dz, w)          dx (N, H, W, Cin); register configs read w as it is (see
//                                    GemmWidths.directFilter), staged ones a transposed copy
//   convBackpropFilter(dz, x)        dfilter (KH, KW, Cin, Cout): slice partials + their sum
// `FMNIST_PRINT_SHADER=<config id or shader-key substring | all>` prints the generated code.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./geometry.ts";
import {
  type Dispatch,
  FlatKernelProgram,
  GeneratedProgram,
  type GeneratedProgramSpec,
  runProgram,
  splitGroups,
  type Uniform,
} from "../backend/webgpu_program.ts";
import {
  bindingNames,
  type ConvEpilogue,
  convGemmSource,
  type GemmWidths,
  GEOMETRY_FIELDS,
} from "./gemm_wgsl.ts";
import { type ConvView, rowWindowApplies, type TileConfig } from "./tiling.ts";
import { windowInvocations, windowTile } from "./gemm_window_wgsl.ts";
import { columnGroups } from "./codegen.ts";
import { printShaderSpec } from "../../flags.ts";
import { winogradBackpropData, winogradBackpropFilter, winogradForward } from "./winograd.ts";
import { loopBudget } from "../backend/loop_cap.ts";
import {
  fitsInputTexture,
  textureInputMarker,
  UNIFORM_INPUT_BYTES,
  uniformInputMarker,
} from "../../tf/uniform_inputs.ts";

function printShader(key: string, id: string, code: string) {
  const spec = printShaderSpec();
  if (spec && (spec === "all" || id === spec || key.includes(spec))) {
    console.error(`// ---- ${key}\n${code}`);
  }
}

const GEMM_UNIFORMS = GEOMETRY_FIELDS.map((f) => `${f} : i32,`).join(" ");

/** The generated kernel of one view, config and widths (its WGSL printed where asked). */
function gemmProgramSpec(
  view: ConvView,
  config: TileConfig,
  widths: GemmWidths,
  epilogue: ConvEpilogue,
  outputSize: number,
  dispatch: Dispatch,
  fusedDz = false,
): GeneratedProgramSpec {
  const direct = view === "bwdData" && widths.directFilter === true;
  const variableNames = bindingNames(view, epilogue, fusedDz, direct);
  // Component per binding: the reduction operand has VA, everything per column VB.
  // fwd: x(VA), w(VB); bwdData: dz(VA), wt(VB) or, read directly, w(VA); bwdFilter: dz, x.
  const aFirst = view !== "bwdFilter";
  const variableComponents = fusedDz
    ? [widths.vb, widths.vb, widths.va, widths.vb] // dy, z, x, terms
    : variableNames.map((_, i) =>
      i === 0
        ? (aFirst ? widths.va : widths.vb)
        : i === 1
        ? (aFirst && !direct ? widths.vb : widths.va)
        : widths.vb
    );
  const strides = widths.strides ? `_s${widths.strides.join("x")}` : "";
  const win = widths.window;
  const tile = win?.rows ? `r${win.rows}${win.cols ? `c${win.cols}` : ""}` : "";
  const window = win ? `_win${win.kw}x${win.sw}${tile}` : "";
  const prologue = fusedDz ? "_bnReluDz" : direct ? "_directW" : "";
  // The filter (input 1 of fwd and bwdData) through uniform buffers, where the config asks and
  // the shape allows (filterUniformParts).
  const parts = widths.uniformFilterParts ?? 0;
  const ubo = parts > 0 ? `_ubo${parts}` : "";
  const tex = widths.textureInputs ? `_tex${widths.textureInputs.join("")}` : "";
  const shaderKey =
    `convGemm_${config.id}_va${widths.va}vb${widths.vb}${strides}${window}${prologue}${ubo}${tex}_${epilogue}`;
  return {
    shaderKey,
    code: () => {
      const markers = [
        ...(parts > 0 ? [uniformInputMarker(variableNames[1], parts)] : []),
        ...(widths.textureInputs ?? []).map((name) => textureInputMarker(name)),
      ];
      const code = [...markers, convGemmSource(view, config, widths, epilogue, fusedDz)].join("\n");
      printShader(shaderKey, config.id, code);
      return code;
    },
    variableNames,
    variableComponents,
    outputComponent: widths.vb,
    outputSize,
    dispatch,
    workgroupSize: config.workgroupSize,
    uniforms: GEMM_UNIFORMS,
  };
}

// One class per view: the name tfjs profiles and GPU timestamps give the generated kernel.
class ConvFwdProgram extends GeneratedProgram {}
class ConvBwdDataProgram extends GeneratedProgram {}
class ConvBwdFilterProgram extends GeneratedProgram {}
class ConvFilterTransposeProgram extends FlatKernelProgram {}
class ConvSumPartialsProgram extends FlatKernelProgram {}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The same buffer as a flat vector (program inputs only; nothing is allocated). */
export function flat(t: TensorInfo): TensorInfo {
  return { dataId: t.dataId, shape: [size(t.shape)], dtype: t.dtype };
}

function int(...values: number[]): Uniform[] {
  return values.map((v) => ({ type: "int32" as const, data: [v] }));
}

/** The GEOMETRY_FIELDS uniforms, in order; the last two only for the split bwdFilter view. */
export function geometryUniforms(g: ConvGeometry, rowsPerSplit = 0, numSplits = 0): Uniform[] {
  const values: Record<typeof GEOMETRY_FIELDS[number], number> = {
    ...g,
    rowsPerSplit,
    numSplits,
  };
  return int(...GEOMETRY_FIELDS.map((f) => values[f]));
}

/** Most filter rows split over uniform bindings (WebGPU's default limit is 12 per stage). */
const MAX_UNIFORM_FILTER_PARTS = 8;

/**
 * In how many uniform bindings a `filterInUniform` config reads the filter at `g` with `widths`
 * (0: from storage). fwd and bwdData register kernels whose filter binding (w, or bwdData's
 * transposed wt) is read as vec4 (a uniform array's stride is 16 bytes): 1 where the filter fits
 * one binding; where it does not, a row window reads one binding per filter row kh (both
 * layouts, w and wt, have kh outermost), where a row fits.
 */
export function filterUniformParts(
  view: ConvView,
  config: TileConfig,
  g: ConvGeometry,
  widths: GemmWidths,
): number {
  if (!config.filterInUniform || config.stageInWorkgroupMemory || view === "bwdFilter") return 0;
  // fwd reads w with VB-vectors; bwdData reads w directly with VA-vectors or wt with VB-vectors.
  const width = view === "bwdData" && widths.directFilter ? widths.va : widths.vb;
  if (width !== 4) return 0;
  const rowBytes = g.kW * g.inC * g.outC * 4;
  if (g.kH * rowBytes <= UNIFORM_INPUT_BYTES) return 1;
  const split = widths.window !== undefined && rowBytes <= UNIFORM_INPUT_BYTES &&
    g.kH <= MAX_UNIFORM_FILTER_PARTS;
  return split ? g.kH : 0;
}

/**
 * The inputs an `inputInTexture` config reads through textures at `g` (none: all from
 * storage): register configs' operands that are read as vec4 (VA or VB = 4), are not in
 * uniform buffers and fit one texture (fitsInputTexture). fwd: x and w;
 * bwdData: dz and its filter (wt, or w read directly); bwdFilter: dz (with the fused prologue
 * dy and z) and x.
 */
export function textureInputs(
  view: ConvView,
  config: TileConfig,
  g: ConvGeometry,
  widths: GemmWidths,
  uniformParts: number,
  fusedDz = false,
): string[] {
  if (!config.inputInTexture || config.stageInWorkgroupMemory || config.winograd) return [];

  const x = fitsInputTexture(g.batch * g.inH * g.inW * g.inC);
  const dz = fitsInputTexture(g.batch * g.outH * g.outW * g.outC);
  const filter = fitsInputTexture(g.kH * g.kW * g.inC * g.outC) && uniformParts === 0;
  const names: string[] = [];
  if (view === "fwd") {
    if (widths.va === 4 && x) names.push("x");
    if (widths.vb === 4 && filter) names.push("w");
  } else if (view === "bwdData") {
    if (widths.va === 4 && dz) names.push("dz");
    const direct = widths.directFilter === true;
    if ((direct ? widths.va : widths.vb) === 4 && filter) names.push(direct ? "w" : "wt");
  } else {
    if (widths.vb === 4 && dz) names.push(...(fusedDz ? ["dy", "z"] : ["dz"]));
    if (widths.va === 4 && x) names.push("x");
  }
  return names;
}

/** gemmWidths, with the filter's uniform parts and the input textures where they apply. */
function viewWidths(
  view: ConvView,
  config: TileConfig,
  g: ConvGeometry,
  fusedDz = false,
): GemmWidths {
  const widths = gemmWidths(view, config, g);
  const parts = filterUniformParts(view, config, g, widths);
  const textures = textureInputs(view, config, g, widths, parts, fusedDz);
  return {
    ...widths,
    ...(parts > 0 ? { uniformFilterParts: parts } : {}),
    ...(textures.length > 0 ? { textureInputs: textures } : {}),
  };
}

/** Vector widths a config gets at a shape: 4 where its channel counts are multiples of 4. */
export function gemmWidths(view: ConvView, config: TileConfig, g: ConvGeometry): GemmWidths {
  if (config.stageInWorkgroupMemory) return { va: 1, vb: 1 };
  if (config.vecWidth === 1) {
    return view === "bwdData"
      ? { va: 1, vb: 1, strides: [g.strideH, g.strideW], directFilter: true }
      : { va: 1, vb: 1 };
  }
  const w = (c: number) => (c % 4 === 0 ? 4 : 1) as 1 | 4;
  if (view === "fwd") {
    const window = config.rowWindow && rowWindowApplies("fwd", g)
      ? { window: { kw: g.kW, sw: g.strideW, ...windowTile(config, g.outW, g.outC) } }
      : {};
    return { va: w(g.inC), vb: w(g.outC), ...window };
  }
  if (config.rowWindow && view === "bwdData" && rowWindowApplies("bwdData", g)) {
    // A forward pass over dz with the transposed filter (gemm_window_wgsl.ts).
    const window = { kw: g.kW, sw: 1, ...windowTile(config, g.inW, g.inC) };
    return { va: w(g.outC), vb: w(g.inC), window };
  }
  if (view === "bwdData") {
    const va = w(g.outC), vb = w(g.inC);
    // The transposed copy only pays where it turns 4 scalar filter loads into one vec4.
    return { va, vb, strides: [g.strideH, g.strideW], directFilter: !(va === 1 && vb === 4) };
  }
  // bwdFilter: the tap window needs stride-1 columns; elsewhere the filter-row kernel runs. Its
  // channel groups stop at the layer's (the model-input layer has one: Cin = 1).
  const va = w(g.inC);
  const groups = Math.min(Math.max(1, config.rowsPerInvocation / va), Math.ceil(g.inC / va));
  const window = config.rowWindow && rowWindowApplies("bwdFilter", g)
    ? { window: { kw: g.kW, sw: 1, rows: groups * va } }
    : {};
  return { va, vb: w(g.outC), ...window };
}

/** Workgroups of a staged config for GEMM rows x cols (x/y), with `z` layers. */
function stagedDispatch(config: TileConfig, rows: number, cols: number, z: number): Dispatch {
  const [wr, wc] = config.workgroupGrid!;
  const blocks = Math.ceil(rows / (wr * config.rowsPerInvocation)) *
    Math.ceil(cols / (wc * config.colsPerInvocation));
  return [...splitGroups(blocks), z];
}

function registerDispatch(config: TileConfig, invocations: number, z: number): Dispatch {
  return [...splitGroups(Math.ceil(invocations / config.workgroupSize)), z];
}

/**
 * The grid of a pixel-row view (fwd, bwdData): GEMM `rows` (pixels; for bwdData those of the
 * largest stride phase, `phases` deep) x `cols` channels; a row window's tiles cover whole rows
 * of the `batch` x `h` x `w` output pixels.
 */
function pixelRowsDispatch(
  config: TileConfig,
  widths: GemmWidths,
  rows: number,
  cols: number,
  phases: number,
  [batch, h, w]: [number, number, number],
): Dispatch {
  if (config.stageInWorkgroupMemory) return stagedDispatch(config, rows, cols, phases);
  if (widths.window) {
    return registerDispatch(config, windowInvocations(widths, batch, h, w, cols), 1);
  }
  const colTiles = Math.ceil(cols / widths.vb / columnGroups(config, widths));
  return registerDispatch(config, Math.ceil(rows / config.rowsPerInvocation) * colTiles, phases);
}

/** Forward conv (z, or y with a fused epilogue): output (N, Ho, Wo, Cout) flat. */
export function convForward(
  backend: WebGPUBackend,
  x: TensorInfo,
  w: TensorInfo,
  g: ConvGeometry,
  epilogue: ConvEpilogue,
  perChannel: TensorInfo[] = [],
  config: TileConfig,
): TensorInfo {
  if (config.winograd) return winogradForward(backend, x, w, g, epilogue, perChannel, config);
  const widths = viewWidths("fwd", config, g);
  const rows = g.batch * g.outH * g.outW;
  const dispatch = pixelRowsDispatch(config, widths, rows, g.outC, 1, [g.batch, g.outH, g.outW]);
  const program = new ConvFwdProgram(
    gemmProgramSpec("fwd", config, widths, epilogue, rows * g.outC, dispatch),
  );
  const out = runProgram(backend, program, [x, w, ...perChannel].map(flat), geometryUniforms(g));
  return { dataId: out.dataId, shape: [g.batch, g.outH, g.outW, g.outC], dtype: "float32" };
}

/** (KH, KW, Cin, Cout) -> (KH, KW, Cout, Cin): Cin innermost, so dx reads 4 of them as a vec4. */
function transposeFilter(backend: WebGPUBackend, w: TensorInfo, g: ConvGeometry): TensorInfo {
  const n = g.kH * g.kW * g.inC * g.outC;
  return runProgram(
    backend,
    new ConvFilterTransposeProgram("conv/conv_filter_transpose.wgsl", {
      shaderKey: "convFilterTranspose",
      variableNames: ["w"],
      uniforms: "inC : i32, outC : i32, kH : i32, kW : i32,",
      outputSize: n,
    }),
    [flat(w)],
    int(g.inC, g.outC, g.kH, g.kW),
  );
}

/** dx = conv2d backprop-input of dz: (N, H, W, Cin). Every element written (phases partition). */
export function convBackpropData(
  backend: WebGPUBackend,
  dz: TensorInfo,
  w: TensorInfo,
  g: ConvGeometry,
  config: TileConfig,
): TensorInfo {
  if (config.winograd) return winogradBackpropData(backend, dz, w, g, config);
  const widths = viewWidths("bwdData", config, g);
  const phases = g.strideH * g.strideW;
  // The largest phase has ceil(H / sH) x ceil(W / sW) pixels per image.
  const rows = g.batch * Math.ceil(g.inH / g.strideH) * Math.ceil(g.inW / g.strideW);
  const image: [number, number, number] = [g.batch, g.inH, g.inW];
  const dispatch = pixelRowsDispatch(config, widths, rows, g.inC, phases, image);
  const wt = widths.directFilter ? flat(w) : transposeFilter(backend, w, g);
  const size = g.batch * g.inH * g.inW * g.inC;
  const program = new ConvBwdDataProgram(
    gemmProgramSpec("bwdData", config, widths, "store", size, dispatch),
  );
  const out = runProgram(backend, program, [flat(dz), wt], geometryUniforms(g));
  if (!widths.directFilter) backend.disposeData(wt.dataId);
  return { dataId: out.dataId, shape: [g.batch, g.inH, g.inW, g.inC], dtype: "float32" };
}

/**
 * Slices of the N*Ho output rows for the filter gradient: about `config.splitK`, each with
 * fewer than loopBudget() pixel iterations per invocation (where the adapter caps loops:
 * backend/loop_cap.ts; nested loops count together there).
 */
export function filterSplits(config: TileConfig, g: ConvGeometry) {
  const outRows = g.batch * g.outH;
  // Staged configs loop over their slice in chunks, with up to 2 staging-loop steps per
  // reduction step (every staged config here: (BM + BN) / WG <= 1 load per step, plus the
  // compute loop), so their slices get half the cap.
  const cap = config.stageInWorkgroupMemory ? loopBudget() / 2 : loopBudget();
  const capRows = Math.max(1, Math.floor(cap / g.outW));
  let per = Math.ceil(outRows / Math.max(1, Math.min(config.splitK ?? 1, outRows)));
  per = Math.min(per, capRows);
  return { rowsPerSplit: per, numSplits: Math.ceil(outRows / per) };
}

/**
 * The batch-norm + ReLU backward inputs from which the bwdFilter register kernel computes dz as
 * it loads it (no dz pass): dy and z (N, Ho, Wo, Cout) and terms (7, Cout) = mean, invStd,
 * gamma, beta, gamma*invStd, dbeta/M, dgamma/M (src/ops/conv_bn_relu/bn_relu_bwd_terms.wgsl).
 */
export interface BnReluDzSource {
  dy: TensorInfo;
  z: TensorInfo;
  terms: TensorInfo;
}

/**
 * dfilter = conv2d backprop-filter of (x, dz): (KH, KW, Cin, Cout). `dz` is a tensor, or the
 * BnReluDzSource to compute it from (register configs only: staged ones need dz itself).
 */
export function convBackpropFilter(
  backend: WebGPUBackend,
  dz: TensorInfo | BnReluDzSource,
  x: TensorInfo,
  g: ConvGeometry,
  config: TileConfig,
): TensorInfo {
  const fused = !("dataId" in dz);
  if (config.winograd) {
    if (fused) throw new Error(`${config.id}: the bnReluDz prologue needs a direct config`);
    return winogradBackpropFilter(backend, dz as TensorInfo, x, g, config);
  }
  const widths = viewWidths("bwdFilter", config, g, fused);
  const { rowsPerSplit, numSplits } = filterSplits(config, g);
  const numRows = g.kH * g.kW * g.inC;
  let dispatch: Dispatch;
  if (config.stageInWorkgroupMemory) {
    dispatch = stagedDispatch(config, numRows, g.outC, numSplits);
  } else {
    const units = numRows / widths.va;
    const tu = Math.max(1, config.rowsPerInvocation / widths.va);
    const cg = columnGroups(config, widths);
    const colTiles = Math.ceil(g.outC / widths.vb / cg);
    if (widths.window) {
      // Tap windows: (filter row, channel-group tile) x column tiles per slice.
      const ciTiles = Math.ceil(g.inC / widths.window.rows!);
      dispatch = registerDispatch(config, g.kH * ciTiles * colTiles * numSplits, 1);
    } else {
      dispatch = registerDispatch(config, Math.ceil(units / tu) * colTiles * numSplits, 1);
    }
  }
  const count = numRows * g.outC;
  const program = new ConvBwdFilterProgram(
    gemmProgramSpec("bwdFilter", config, widths, "store", numSplits * count, dispatch, fused),
  );
  const inputs = fused ? [dz.dy, dz.z, x, dz.terms].map(flat) : [flat(dz as TensorInfo), flat(x)];
  const partials = runProgram(
    backend,
    program,
    inputs,
    geometryUniforms(g, rowsPerSplit, numSplits),
  );
  let out = partials;
  if (numSplits > 1) {
    out = runProgram(
      backend,
      new ConvSumPartialsProgram("conv/sum_partials.wgsl", {
        shaderKey: "convSumPartials",
        variableNames: ["partials"],
        uniforms: "numPartials : i32, rowLen : i32, offset : i32, count : i32,",
        outputSize: count,
      }),
      [partials],
      int(numSplits, count, 0, count),
    );
    backend.disposeData(partials.dataId);
  }
  return { dataId: out.dataId, shape: [g.kH, g.kW, g.inC, g.outC], dtype: "float32" };
}
