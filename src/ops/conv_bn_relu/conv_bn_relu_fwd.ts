// WebGPU programs of the fused conv + batch-norm + ReLU forward, and the code that runs them.
//
// Training forward (ConvBnReluTrain) = 3 dispatches, because batch statistics need a grid-wide
// reduction between the conv and the normalisation:
//   1. conv      x, w -> z                       generated forward view (conv/gemm.ts), `store`
//   2. bn_stats  z -> partials (2P + H, Cout)    per-chunk mean/M2 on the chunked grid
//                (bn_chunk_grid.ts), then gamma, beta [, running statistics] copied behind
//   3. apply     z, partials -> y, stats [, movingMean', movingVariance']   every workgroup
//                merges all P partials of its channels (Chan, fixed order), then normalises its
//                row chunk; chunk 0 writes the batch statistics and the running ones
// The conv writes z (a kernel output saved for backward); passes 2-3 re-read it once. Fusing the
// partials into the conv epilogue would need a second output buffer, which tfjs programs do not
// have (one `result` binding), or a packed buffer and a copy of z out of it.
// Apply is a multi-output program (webgpu_multi_output.ts): the running statistics come out as
// fresh tensors the layer assigns to its `moving_mean` / `moving_variance` variables (checkpoint
// format unchanged), each `moving * momentum + batch * (1 - momentum)` rounded as tfjs's
// mul/mul/add (bnMovingAverageRef): no dispatch of their own, and no pass between bn_stats and
// apply that merges the partials (the apply's workgroups merge them; BENCHMARKS.md has the
// dispatch counts per step before and after).
// Why apply merges, measured on llvmpipe (LLVM 15.0.6, 2 busy cores), batch 128, GPU ms
// (timestamps), a separate merge pass + flat apply vs this apply, one process alternating, min of
// 21 / of 15 (two runs): 28x28x32 3.25 / 3.46 -> 3.28 / 3.41 (on par); 14x14x64 1.84 / 1.62 ->
// 1.98 / 1.70 (+5-8%: a workgroup there merges 32 partials for 98 rows per lane). About even over
// enhanced's 4 layers on llvmpipe; kept for the 4 dispatches per step (tens of µs of host time
// each on a GPU). Row lanes take contiguous rows (src/ops/wgsl/bn_chunk_rows.wgsl): every 8th
// row per lane ran this apply at 5.9 ms at 28x28x32.
// Inference (ConvBnReluInfer) = 1 dispatch: the same generated conv with the scaleShiftRelu
// epilogue (BN folded on the host). The naive oracle (src/ops/conv/conv_fwd_naive.wgsl) replaces the
// conv under the FMNIST_NAIVE_KERNELS flag. On llvmpipe (batch 128, 3x3, 32->32 at 28x28 and
// 64->64 at 14x14) the conv is ~85% of the training forward, bn_stats ~5%, apply ~8%.
//
// Shader keys hold compile-time facts only (tile config, epilogue, vector widths); every shape
// travels as a uniform, so one pipeline serves all batch sizes.
//
// The kernels that run these passes are in conv_bn_relu_webgpu.ts.

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import {
  type Dispatch,
  type DispatchLayout,
  runProgram,
  type Uniform,
} from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import {
  MultiOutputProgram,
  type ProgramGrid,
  runMultiOutputProgram,
} from "../backend/webgpu_multi_output.ts";
import { type BnChunkGrid, bnChunkGrid } from "./bn_chunk_grid.ts";
import { flat } from "../conv/gemm.ts";
import { runConvForward as runConv } from "../conv/passes.ts";
import type { TilePlan } from "../conv/tile_plan.ts";
import { inputLoadFunctions, textureLoadsApply } from "../backend/texture_loads.ts";
import type { ConvGeometry } from "../conv/geometry.ts";

/** Elementwise programs read f32, or vec4 when Cout % 4 == 0: `alias VT`, `const VW`. */
function vectorAlias(vec4: boolean): string {
  return `alias VT = ${vec4 ? "vec4<f32>" : "f32"};\nconst VW = ${vec4 ? 4 : 1};\n`;
}

/** Per-channel parameters bn_stats copies behind its partials for the apply pass. */
function paramNames(moving: boolean): string[] {
  return moving ? ["gamma", "beta", "movingMean", "movingVariance"] : ["gamma", "beta"];
}

/**
 * Pass 2: per-chunk (mean, M2) of z on the chunked grid, then the parameters the apply pass
 * reads (gamma, beta and, given `moving`, the running statistics); see src/ops/conv_bn_relu/bn_stats.wgsl.
 */
export class BnStatsPartialProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout = { x: [0], y: [0] };
  dispatch: Dispatch;
  variableNames: string[];
  workgroupSize: [number, number, number];
  uniforms = "rows : i32, outC : i32, rowsPerChunk : i32, chunks : i32,";
  outputComponent: number;
  variableComponents: number[];

  /** z through a texture (texture_loads.ts). */
  private readonly textured: boolean;

  constructor(grid: BnChunkGrid, outC: number, moving: boolean, textured: boolean) {
    this.textured = textured;
    this.variableNames = ["z", ...paramNames(moving)];
    this.outputShape = [(2 * grid.chunks + paramNames(moving).length) * outC];
    const width = grid.vec4 ? 4 : 1;
    this.outputComponent = width;
    this.variableComponents = this.variableNames.map(() => width);
    this.dispatch = grid.dispatch;
    this.workgroupSize = grid.workgroupSize;
    this.shaderKey = `bnStatsPartial_w${width}_p${paramNames(moving).length}${
      textured ? "_tex" : ""
    }`;
  }

  getUserCode(): string {
    const copies = this.variableNames.slice(1).map((name, j) =>
      `  result[base + ${j} * groups + c] = ${name}[c];`
    );
    return vectorAlias(this.outputComponent === 4) +
      inputLoadFunctions(["z"], "VT", this.textured) +
      `\nfn copyParams(c : i32, base : i32, groups : i32) {\n${copies.join("\n")}\n}\n` +
      wgsl("conv_bn_relu/bn_stats.wgsl");
  }
}

/**
 * Pass 3: merges the partials into the batch statistics in every workgroup, normalises its rows
 * (y) and, from chunk 0, writes stats (3, Cout) and, given the running statistics, their update
 * (multi-output: one dispatch); see src/ops/conv_bn_relu/bn_relu_apply.wgsl.
 */
export class BnReluApplyProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames = ["z", "partials"];
  override readonly uniforms: string;
  override readonly grid: ProgramGrid;
  override readonly vec4: boolean;
  private readonly moving: boolean;
  /** z through a texture (texture_loads.ts). */
  private readonly textured: boolean;

  constructor(grid: BnChunkGrid, moving: boolean, textured: boolean) {
    super();
    this.moving = moving;
    this.textured = textured;
    this.grid = { workgroupSize: grid.workgroupSize, dispatch: grid.dispatch };
    this.vec4 = grid.vec4;
    this.outputNames = moving ? ["y", "stats", "newMean", "newVariance"] : ["y", "stats"];
    this.uniforms = "rows : i32, outC : i32, rowsPerChunk : i32, chunks : i32, eps : f32," +
      (moving ? " momentum : f32, oneMinusMomentum : f32," : "");
    this.shaderKey = `bnReluApply_w${this.vec4 ? 4 : 1}${moving ? "_moving" : ""}${
      textured ? "_tex" : ""
    }`;
  }

  getUserCode(): string {
    // Each product and the sum is one float32 rounding, as tfjs's mul/mul/add (see top).
    const update = this.moving
      ? `
  newMean[c] = partials[params + 2 * groups + c] * uniforms.momentum +
    mean * uniforms.oneMinusMomentum;
  newVariance[c] = partials[params + 3 * groups + c] * uniforms.momentum +
    variance * uniforms.oneMinusMomentum;`
      : "";
    return vectorAlias(this.vec4) + inputLoadFunctions(["z"], "VT", this.textured) + `
fn writeStats(c : i32, mean : VT, variance : VT, invStd : VT, params : i32, groups : i32) {
  stats[c] = mean;
  stats[groups + c] = variance;
  stats[2 * groups + c] = invStd;${update}
}
` + wgsl("conv_bn_relu/bn_relu_apply.wgsl");
  }
}

/** The layer's running statistics a training forward folds the batch statistics into. */
export interface MovingStatsInputs {
  movingMean: TensorInfo;
  movingVariance: TensorInfo;
  momentum: number;
}

/**
 * Passes 2-3 of the training forward on z: returns [y, stats], then, given `moving`, the
 * updated running mean and variance (fresh tensors); the partials are released.
 */
export function runBnReluTrain(
  backend: WebGPUBackend,
  z: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  epsilon: number,
  moving?: MovingStatsInputs,
): TensorInfo[] {
  const c = z.shape[3];
  const rows = z.shape[0] * z.shape[1] * z.shape[2];
  const grid = bnChunkGrid(rows, c);
  const i32 = (v: number): Uniform => ({ type: "int32", data: [v] });
  const f32 = (v: number): Uniform => ({ type: "float32", data: [Math.fround(v)] });
  const shape = [i32(rows), i32(c), i32(grid.rowsPerChunk), i32(grid.chunks)];
  const params = moving ? [gamma, beta, moving.movingMean, moving.movingVariance] : [gamma, beta];
  const textured = textureLoadsApply(grid.vec4 ? 4 : 1, rows * c);
  const partials = runProgram(
    backend,
    new BnStatsPartialProgram(grid, c, moving !== undefined, textured),
    [z, ...params].map(flat),
    shape,
  );
  const outs = runMultiOutputProgram(
    backend,
    new BnReluApplyProgram(grid, moving !== undefined, textured),
    moving ? [z.shape, [3, c], [c], [c]] : [z.shape, [3, c]],
    [flat(z), partials],
    rows * c,
    moving
      ? [...shape, f32(epsilon), f32(moving.momentum), f32(1 - moving.momentum)]
      : [...shape, f32(epsilon)],
  );
  backend.disposeData(partials.dataId);
  return outs;
}

/**
 * Training forward on the GPU: returns [y, z, stats], then, given `moving`, the updated running
 * mean and variance (fresh tensors); intermediate partials are released.
 */
export function runConvBnReluTrain(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  g: ConvGeometry,
  plan: TilePlan,
  epsilon: number,
  moving?: MovingStatsInputs,
): TensorInfo[] {
  const z = runConv(backend, x, filter, g, "store", plan);
  const [y, ...stats] = runBnReluTrain(backend, z, gamma, beta, epsilon, moving);
  return [y, z, ...stats];
}

/** Inference forward on the GPU: y = relu(conv(x, filter) * scale + shift), one dispatch. */
export function runConvBnReluInfer(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  scale: TensorInfo,
  shift: TensorInfo,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo {
  return runConv(backend, x, filter, g, "scaleShiftRelu", plan, [scale, shift]);
}
