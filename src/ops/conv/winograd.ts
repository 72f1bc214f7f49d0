// Dispatch of the Winograd F(2x2, 3x3) convolution (WGSL from winograd_wgsl.ts, the math
// in winograd_geometry.ts) for 3x3 stride-1 layers, one function per view, called by
// gemm.ts when the tile configuration it resolved is a Winograd one (TileConfig.winograd):
//   winogradForward(x, w, epilogue)   4 dispatches: filter, input transforms, GEMM, output
//   winogradBackpropData(dz, w)       the same on dz with the rotated filter
//   winogradBackpropFilter(dz, x)     5: input and dz transforms, GEMM over tile slices, sum +
//                                     output transform
// Batches whose transformed buffers would pass one storage binding (128 MiB by default) run in
// chunks of images (batchChunks): at batch 512 a 28x28 32->32 layer's M is 205 MB, and a binding
// past the limit fails validation, so its dispatch does nothing.
// The config's rowsPerInvocation / colsPerInvocation shape the GEMM's register tile (rows =
// tiles, or input channels for the filter gradient; columns = channels, 4 per vec4) and splitK
// the filter gradient's slices, as for the direct configs.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./geometry.ts";
import {
  GeneratedProgram,
  type GeneratedProgramSpec,
  makeOutput,
  runProgram,
  splitGroups,
  type Uniform,
} from "../backend/webgpu_program.ts";
import { loopBudget } from "../backend/loop_cap.ts";
import { bindingNames, type ConvEpilogue } from "./gemm_wgsl.ts";
import type { ConvView, TileConfig } from "./tiling.ts";
import { dataGeometry, winogradApplies, winogradTiles } from "./winograd_geometry.ts";
import {
  dzTransformSource,
  filterGemmSource,
  filterOutputSource,
  filterTransformSource,
  gemmSource,
  inputTransformSource,
  outputTransformSource,
  WINOGRAD_FIELDS,
} from "./winograd_wgsl.ts";

/**
 * A pass as run() takes it: its invocations on a flat grid of `workgroupSize`-wide groups
 * (default 64; `planes` deep, default 1) and the WINOGRAD_FIELDS uniforms.
 */
type PassSpec = Omit<GeneratedProgramSpec, "uniforms" | "dispatch" | "workgroupSize"> & {
  invocations: number;
  workgroupSize?: number;
  planes?: number;
};
const WINOGRAD_UNIFORMS = WINOGRAD_FIELDS.map((f) => `${f} : i32,`).join(" ");

/** One Winograd pass; the subclass per pass names it in tfjs profiles and GPU timestamps. */
abstract class WinogradProgram extends GeneratedProgram {}

class WinogradInputTransformProgram extends WinogradProgram {}
class WinogradFilterTransformProgram extends WinogradProgram {}
class WinogradGemmProgram extends WinogradProgram {}
class WinogradOutputTransformProgram extends WinogradProgram {}
class WinogradDzTransformProgram extends WinogradProgram {}
class WinogradFilterGemmProgram extends WinogradProgram {}
class WinogradFilterOutputProgram extends WinogradProgram {}

function flat(t: TensorInfo): TensorInfo {
  return { dataId: t.dataId, shape: [t.shape.reduce((a, b) => a * b, 1)], dtype: t.dtype };
}

/** Sizes of one Winograd problem in the forward's terms (K reduction, N output channels). */
interface Plan {
  g: ConvGeometry;
  /** The first image of this batch chunk (g.batch images from there). */
  imageOffset: number;
  tilesH: number;
  tilesW: number;
  tiles: number;
  k4: number;
  n4: number;
}

function plan(g: ConvGeometry, imageOffset = 0): Plan {
  const k4 = Math.ceil(g.inC / 4), n4 = Math.ceil(g.outC / 4);
  return { g, imageOffset, ...winogradTiles(g), k4, n4 };
}

/**
 * Batch chunks whose transformed buffers (16 planes x tiles x channel vec4s, 16 bytes each) fit
 * one storage binding: WebGPU's default limit, and llvmpipe's, is 128 MiB, which a 28x28 32->32
 * layer's M passes at batch 512 (205 MB). [first image, images] per chunk, equal sizes.
 */
export function batchChunks(g: ConvGeometry, maxBindingBytes: number): [number, number][] {
  const perImage = imageBytes(g);
  const fit = Math.max(1, Math.floor(maxBindingBytes / perImage));
  const count = Math.ceil(g.batch / fit);
  const per = Math.ceil(g.batch / count);
  const out: [number, number][] = [];
  for (let n0 = 0; n0 < g.batch; n0 += per) out.push([n0, Math.min(per, g.batch - n0)]);
  return out;
}

/** Bytes per image of the largest transformed buffer (V or M, Z) in the terms of g. */
function imageBytes(g: ConvGeometry): number {
  const p = plan({ ...g, batch: 1 });
  return 16 * 16 * p.tiles * Math.max(p.k4, p.n4);
}

/** The WINOGRAD_FIELDS uniforms, in order. */
function uniformsOf(p: Plan, rowsPerSplit = 0, numSplits = 0, sliceOffset = 0): Uniform[] {
  const values: Record<typeof WINOGRAD_FIELDS[number], number> = {
    ...p.g,
    ...p,
    rowsPerSplit,
    numSplits,
    sliceOffset,
  };
  return WINOGRAD_FIELDS.map((f) => ({ type: "int32" as const, data: [values[f]] }));
}

const width = (c: number) => (c % 4 === 0 ? 4 : 1) as 1 | 4;

function run(
  backend: WebGPUBackend,
  Program: new (s: GeneratedProgramSpec) => WinogradProgram,
  spec: PassSpec,
  inputs: TensorInfo[],
  uniforms: Uniform[],
  output?: TensorInfo,
): TensorInfo {
  const { invocations, workgroupSize = 64, planes = 1, ...rest } = spec;
  const program = new Program({
    ...rest,
    dispatch: [...splitGroups(Math.ceil(invocations / workgroupSize)), planes],
    workgroupSize,
    uniforms: WINOGRAD_UNIFORMS,
  });
  if (!output) return runProgram(backend, program, inputs.map(flat), uniforms);
  return backend.runWebGPUProgram(program, inputs.map(flat), "float32", uniforms, output);
}

let bindingCap = Infinity;

/** Runs `f` with the binding limit the chunking assumes capped at `bytes` (tests: many chunks). */
export function withWinogradBindingCap<T>(bytes: number, f: () => Promise<T>): Promise<T> {
  const before = bindingCap;
  bindingCap = bytes;
  return f().finally(() => bindingCap = before);
}

function maxBinding(backend: WebGPUBackend): number {
  return Math.min(bindingCap, backend.device.limits.maxStorageBufferBindingSize);
}

/**
 * A transform into the 16 planes of `rows` vec4s each (V, U or Z): one invocation per vec4 of a
 * plane, reading `input` (bound as `name`, `width` floats per element).
 */
function transformPass(
  backend: WebGPUBackend,
  Program: new (s: GeneratedProgramSpec) => WinogradProgram,
  pass: { shaderKey: string; code: () => string; name: string; width: number },
  input: TensorInfo,
  rows: number,
  p: Plan,
): TensorInfo {
  return run(
    backend,
    Program,
    {
      shaderKey: pass.shaderKey,
      code: pass.code,
      variableNames: [pass.name],
      variableComponents: [pass.width],
      outputComponent: 4,
      outputSize: 16 * rows * 4,
      invocations: rows,
    },
    [input],
    uniformsOf(p),
  );
}

/** V (16, tiles, k4 vec4) of x under the forward geometry of `p`. */
function inputTransform(backend: WebGPUBackend, x: TensorInfo, p: Plan): TensorInfo {
  const va = width(p.g.inC);
  const code = () => inputTransformSource(va);
  const pass = { shaderKey: `winogradInput_va${va}`, code, name: "x", width: va };
  return transformPass(backend, WinogradInputTransformProgram, pass, x, p.tiles * p.k4, p);
}

/** U (16, 4 k4, n4 vec4) of the filter; `rotated` for the data view. */
function filterTransform(backend: WebGPUBackend, w: TensorInfo, p: Plan, rotated: boolean) {
  const code = () => filterTransformSource(rotated);
  const pass = {
    shaderKey: `winogradFilter_${rotated ? "rot" : "fwd"}`,
    code,
    name: "w",
    width: 1,
  };
  return transformPass(backend, WinogradFilterTransformProgram, pass, w, 4 * p.k4 * p.n4, p);
}

/** Z (16, tiles, n4 vec4): the filter gradient's transform of dz. */
function dzTransform(backend: WebGPUBackend, dz: TensorInfo, p: Plan): TensorInfo {
  const vb = width(p.g.outC);
  const pass = {
    shaderKey: `winogradDz_vb${vb}`,
    code: () => dzTransformSource(vb),
    name: "dz",
    width: vb,
  };
  return transformPass(backend, WinogradDzTransformProgram, pass, dz, p.tiles * p.n4, p);
}

/**
 * A per-plane GEMM pass (M = V U, or the filter gradient's P = V^T Z): vec4 operands bound as
 * `operands`, vec4 results, the 16 planes in grid z, `wg`-wide groups.
 */
function planeGemmPass(
  shaderKey: string,
  code: () => string,
  operands: [string, string],
  outputSize: number,
  invocations: number,
  wg: number,
): PassSpec {
  return {
    shaderKey,
    code,
    variableNames: operands,
    variableComponents: [4, 4],
    outputComponent: 4,
    outputSize,
    invocations,
    workgroupSize: wg,
    planes: 16,
  };
}

/** Register tile of a config for the GEMMs: rows and column vec4s per invocation. */
function gemmTile(config: TileConfig): { rows: number; colGroups: number } {
  return {
    rows: Math.max(1, config.rowsPerInvocation),
    colGroups: Math.max(1, Math.floor(config.colsPerInvocation / 4)),
  };
}

/** The forward in the terms of `g` (fwd or the data view): V, U -> M -> output + epilogue. */
function forwardPasses(
  backend: WebGPUBackend,
  x: TensorInfo,
  w: TensorInfo,
  g: ConvGeometry,
  rotated: boolean,
  epilogue: ConvEpilogue,
  perChannel: TensorInfo[],
  config: TileConfig,
): TensorInfo {
  const u = filterTransform(backend, w, plan(g), rotated);
  const vb = width(g.outC);
  const size = g.batch * g.outH * g.outW * g.outC;
  const y = makeOutput(backend, [size]);
  for (const [n0, nb] of batchChunks(g, maxBinding(backend))) {
    const p = plan({ ...g, batch: nb }, n0);
    const v = inputTransform(backend, x, p);
    const { rows, colGroups } = gemmTile(config);
    const wg = config.workgroupSize;
    const invocations = Math.ceil(p.tiles / rows) * Math.ceil(p.n4 / colGroups);
    const pass = planeGemmPass(
      `winogradGemm_r${rows}c${colGroups}w${wg}`,
      () => gemmSource(rows, colGroups, wg),
      ["V", "U"],
      16 * p.tiles * p.n4 * 4,
      invocations,
      wg,
    );
    const m = run(backend, WinogradGemmProgram, pass, [v, u], uniformsOf(p));
    backend.disposeData(v.dataId);
    // Per-channel epilogue inputs are read VB-wide, as the direct kernels read them.
    const names = ["M", ...bindingNames("fwd", epilogue).slice(2)];
    run(
      backend,
      WinogradOutputTransformProgram,
      {
        shaderKey: `winogradOutput_vb${vb}_${epilogue}`,
        code: () => outputTransformSource(epilogue, vb),
        variableNames: names,
        variableComponents: names.map((_, i) => (i === 0 ? 4 : vb)),
        outputComponent: vb,
        outputSize: size,
        invocations: p.tiles * p.n4,
      },
      [m, ...perChannel],
      uniformsOf(p),
      y,
    );
    backend.disposeData(m.dataId);
  }
  backend.disposeData(u.dataId);
  return y;
}

function requireWinograd(g: ConvGeometry, config: TileConfig): void {
  if (!winogradApplies(g)) {
    throw new Error(
      `${config.id}: Winograd F(2x2,3x3) needs a 3x3 stride-1 convolution, got ` +
        `${g.kH}x${g.kW} stride ${g.strideH}x${g.strideW}`,
    );
  }
}

/** Forward conv (z, or y with a fused epilogue) by Winograd: (N, Ho, Wo, Cout). */
export function winogradForward(
  backend: WebGPUBackend,
  x: TensorInfo,
  w: TensorInfo,
  g: ConvGeometry,
  epilogue: ConvEpilogue,
  perChannel: TensorInfo[],
  config: TileConfig,
): TensorInfo {
  requireWinograd(g, config);
  const y = forwardPasses(backend, x, w, g, false, epilogue, perChannel, config);
  return { dataId: y.dataId, shape: [g.batch, g.outH, g.outW, g.outC], dtype: "float32" };
}

/** dx (N, H, W, Cin) by Winograd: the forward of dz with the rotated filter. */
export function winogradBackpropData(
  backend: WebGPUBackend,
  dz: TensorInfo,
  w: TensorInfo,
  g: ConvGeometry,
  config: TileConfig,
): TensorInfo {
  requireWinograd(g, config);
  const dx = forwardPasses(backend, dz, w, dataGeometry(g), true, "store", [], config);
  return { dataId: dx.dataId, shape: [g.batch, g.inH, g.inW, g.inC], dtype: "float32" };
}

/**
 * Winograd serves this view of `g` where it applies and one image's transformed buffers fit a
 * storage binding of `maxBindingBytes` (larger batches run in chunks of images).
 */
export function winogradServes(view: ConvView, g: ConvGeometry, maxBindingBytes: number): boolean {
  return winogradApplies(g) &&
    imageBytes(view === "bwdData" ? dataGeometry(g) : g) <= maxBindingBytes;
}

/**
 * Slices of the tiles for the filter-gradient GEMM: about config.splitK, each within the loop
 * budget of the adapter (backend/loop_cap.ts: lavapipe before Mesa 25 stops loops at 65,535).
 */
export function winogradFilterSplits(config: TileConfig, tiles: number) {
  let per = Math.ceil(tiles / Math.max(1, Math.min(config.splitK ?? 1, tiles)));
  per = Math.min(per, loopBudget()); // the GEMM's tile loop, where the adapter caps loops
  return { rowsPerSplit: per, numSplits: Math.ceil(tiles / per) };
}

/** dfilter (3, 3, Cin, Cout) by Winograd F(3x3, 2x2). */
export function winogradBackpropFilter(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  config: TileConfig,
): TensorInfo {
  requireWinograd(g, config);
  const tu = Math.max(1, Math.floor(config.rowsPerInvocation / 4));
  const { colGroups } = gemmTile(config);
  const wg = config.workgroupSize;
  const chunks = batchChunks(g, maxBinding(backend)).map(([n0, nb]) => {
    const p = plan({ ...g, batch: nb }, n0);
    return { p, ...winogradFilterSplits(config, p.tiles) };
  });
  const whole = plan(g);
  const slices = chunks.reduce((a, c) => a + c.numSplits, 0);
  const sliceFloats = 16 * 4 * whole.k4 * whole.n4 * 4;
  // One partials buffer for every chunk's slices (chunk c writes from its slice offset on).
  const partials = makeOutput(backend, [slices * sliceFloats]);
  let sliceOffset = 0;
  for (const { p, rowsPerSplit, numSplits } of chunks) {
    const v = inputTransform(backend, x, p);
    const z = dzTransform(backend, dz, p);
    const invocations = Math.ceil(p.k4 / tu) * Math.ceil(p.n4 / colGroups) * numSplits;
    const pass = planeGemmPass(
      `winogradFilterGemm_u${tu}c${colGroups}w${wg}`,
      () => filterGemmSource(tu, colGroups, wg),
      ["V", "Z"],
      slices * sliceFloats,
      invocations,
      wg,
    );
    const uniforms = uniformsOf(p, rowsPerSplit, numSplits, sliceOffset);
    run(backend, WinogradFilterGemmProgram, pass, [v, z], uniforms, partials);
    backend.disposeData(v.dataId);
    backend.disposeData(z.dataId);
    sliceOffset += numSplits;
  }
  const dw = run(
    backend,
    WinogradFilterOutputProgram,
    {
      shaderKey: "winogradFilterOutput",
      code: () => filterOutputSource(),
      variableNames: ["P"],
      variableComponents: [4],
      outputComponent: 1,
      outputSize: 9 * g.inC * g.outC,
      invocations: g.inC * whole.n4,
    },
    [partials],
    uniformsOf(whole, 0, slices),
  );
  backend.disposeData(partials.dataId);
  return { dataId: dw.dataId, shape: [3, 3, g.inC, g.outC], dtype: "float32" };
}
