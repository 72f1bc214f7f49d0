// WebGPU programs of the fused conv + batch-norm + ReLU forward, and the code that runs them.
//
// Training forward (ConvBnReluTrain) = 4 dispatches, because batch statistics need a grid-wide
// reduction between the conv and the normalisation:
//   1. conv        x, w -> z                    generated forward view (conv_gemm.ts), `store`
//   2. bn_stats    z -> partials (P, 3, Cout)   per-chunk count/mean/M2, fully parallel
//   3. finalize    partials -> stats (3, Cout)  Chan's merge; Cout invocations; given the
//                  layer's running statistics, also their update (movingMean', movingVariance')
//   4. apply       z, stats, gamma, beta -> y   elementwise normalise + ReLU
// The conv writes z (a kernel output saved for backward); passes 2-3 re-read it once. Fusing the
// partials into the conv epilogue would need a second output buffer, which tfjs programs do not
// have (one `result` binding), or a packed buffer and a copy of z out of it.
// Finalize is a multi-output program (webgpu_multi_output.ts): the running statistics come out
// as fresh tensors the layer assigns to its `moving_mean` / `moving_variance` variables
// (checkpoint format unchanged), each `moving * momentum + batch * (1 - momentum)` rounded as
// tfjs's mul/mul/add (bnMovingAverageRef). Dispatches for the update per BN layer: 6 tfjs ops
// per statistic at first, then 2 Slices + 2 updates, then 1 BnMovingAverage (be1622d), now 0:
// enhanced's step 83 -> 79 (4 BN layers, counted with bench/dispatches.ts).
// Inference (ConvBnReluInfer) = 1 dispatch: the same generated conv with the scaleShiftRelu
// epilogue (BN folded on the host). The naive oracle (kernels/conv_fwd_naive.wgsl) replaces the
// conv under the FMNIST_NAIVE_KERNELS flag. On llvmpipe (batch 128, 3x3, 32->32 at 28x28 and 64->64 at
// 14x14) the conv is ~85% of the training forward, bn_stats ~5%, apply ~8%, finalize < 0.1%.
//
// Shader keys hold compile-time facts only (tile config, epilogue, vector widths); every shape
// travels as a uniform, so one pipeline serves all batch sizes.
//
// Importing this module registers both kernels for webgpu and cpu (src/ops/register.ts does).

import {
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import {
  type Dispatch,
  type DispatchLayout,
  kernelSource,
  runProgram,
  splitGroups,
  type Uniform,
} from "./webgpu_program.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "./webgpu_multi_output.ts";
import { runConvForward as runConv } from "./conv_passes.ts";
import { type ConvGeometry, convGeometry } from "./conv_geometry.ts";
import {
  CONV_BN_RELU_INFER,
  CONV_BN_RELU_TRAIN,
  type ConvBnReluKernelAttrs,
} from "./conv_bn_relu.ts";
import { bnMovingAverageRef, convBnReluInferRef, convBnReluTrainRef } from "./conv_bn_relu_ref.ts";

/** Pass 2: per-chunk (count, mean, M2) of z; see kernels/bn_stats.wgsl. */
export class BnStatsPartialProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout = { x: [0, 1, 2] };
  dispatch: Dispatch;
  variableNames = ["z"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "rowsPerChunk : i32,";
  outputComponent: number;
  variableComponents: number[];
  readonly rowsPerChunk: number;

  constructor(rows: number, outC: number) {
    // ~64 chunks: enough parallel invocations for any Cout, and a finalize loop of <= 64 steps.
    this.rowsPerChunk = Math.max(16, Math.ceil(rows / 64));
    const chunks = Math.ceil(rows / this.rowsPerChunk);
    this.outputShape = [chunks, 3, outC];
    const width = outC % 4 === 0 ? 4 : 1;
    this.outputComponent = width;
    this.variableComponents = [width];
    this.dispatch = [Math.ceil((chunks * outC) / width / 64), 1, 1];
    this.shaderKey = `bnStatsPartial_w${width}`;
  }

  getUserCode(): string {
    return vectorAlias(this.outputComponent) + kernelSource("bn_stats");
  }
}

/**
 * Pass 3: merges partials into stats (3, Cout) and, given the layer's running statistics, writes
 * their update too (multi-output: one dispatch); see kernels/bn_stats_finalize.wgsl.
 */
export class BnStatsFinalizeProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames: string[];
  override readonly uniforms: string;
  private readonly moving: boolean;

  constructor(moving: boolean) {
    super();
    this.moving = moving;
    this.shaderKey = moving ? "bnStatsFinalizeMoving" : "bnStatsFinalize";
    this.outputNames = moving ? ["stats", "newMean", "newVariance"] : ["stats"];
    this.variableNames = moving ? ["partials", "movingMean", "movingVariance"] : ["partials"];
    this.uniforms = moving ? "eps : f32, momentum : f32, oneMinusMomentum : f32," : "eps : f32,";
  }

  getUserCode(): string {
    // Each product and the sum is one float32 rounding, as tfjs's mul/mul/add (see top).
    const update = this.moving
      ? `
  newMean[c] = movingMean[c] * uniforms.momentum + s.x * uniforms.oneMinusMomentum;
  newVariance[c] = movingVariance[c] * uniforms.momentum + s.y * uniforms.oneMinusMomentum;`
      : "";
    return kernelSource("bn_stats_finalize") +
      `\nfn main(c : i32) {\n  let s = batchStats(c);\n  writeStats(c, s);${update}\n}\n`;
  }
}

/** Elementwise programs read f32, or vec4 when Cout % 4 == 0: `alias VT`, `const VW`. */
function vectorAlias(width: number): string {
  return `alias VT = ${width === 4 ? "vec4<f32>" : "f32"};\nconst VW = ${width};\n`;
}

/** Rows per invocation of the apply pass (shares the 4 per-channel loads). */
const APPLY_ROWS = 16;

/** Pass 4: y = relu(gamma * (z - mean) * invStd + beta); see kernels/bn_relu_apply.wgsl. */
export class BnReluApplyProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout;
  dispatch: Dispatch;
  variableNames = ["z", "stats", "gamma", "beta"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputComponent: number;
  variableComponents: number[];

  constructor(zShape: number[]) {
    this.outputShape = zShape;
    const width = zShape[3] % 4 === 0 ? 4 : 1;
    this.outputComponent = width;
    this.variableComponents = [width, width, width, width];
    this.dispatchLayout = { x: [0, 1, 2, 3] };
    const rows = zShape[0] * zShape[1] * zShape[2];
    const invocations = Math.ceil(rows / APPLY_ROWS) * (zShape[3] / width);
    const [gx, gz] = splitGroups(Math.ceil(invocations / 64));
    this.dispatch = [gx, 1, gz];
    this.shaderKey = `bnReluApply_w${width}_r${APPLY_ROWS}`;
  }

  getUserCode(): string {
    return vectorAlias(this.outputComponent) + `const ROWS = ${APPLY_ROWS};\n` +
      kernelSource("bn_relu_apply");
  }
}

/** The layer's running statistics a training forward folds the batch statistics into. */
export interface MovingStatsInputs {
  movingMean: TensorInfo;
  movingVariance: TensorInfo;
  momentum: number;
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
  epsilon: number,
  moving?: MovingStatsInputs,
): TensorInfo[] {
  const z = runConv(backend, x, filter, g, "store");
  const statsProgram = new BnStatsPartialProgram(g.batch * g.outH * g.outW, g.outC);
  const partials = runProgram(backend, statsProgram, [z], [
    { type: "int32", data: [statsProgram.rowsPerChunk] },
  ]);
  const c = g.outC;
  const f32 = (v: number): Uniform => ({ type: "float32", data: [Math.fround(v)] });
  const finalized = runMultiOutputProgram(
    backend,
    new BnStatsFinalizeProgram(moving !== undefined),
    moving ? [[3, c], [c], [c]] : [[3, c]],
    moving ? [partials, moving.movingMean, moving.movingVariance] : [partials],
    c,
    moving ? [f32(epsilon), f32(moving.momentum), f32(1 - moving.momentum)] : [f32(epsilon)],
  );
  backend.disposeData(partials.dataId);
  const stats = finalized[0];
  const y = runProgram(backend, new BnReluApplyProgram(z.shape), [z, stats, gamma, beta]);
  return [y, z, ...finalized];
}

/** Inference forward on the GPU: y = relu(conv(x, filter) * scale + shift), one dispatch. */
export function runConvBnReluInfer(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  scale: TensorInfo,
  shift: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  return runConv(backend, x, filter, g, "scaleShiftRelu", [scale, shift]);
}

// ---------------------------------------------------------------------------------------------
// Kernel registrations: webgpu runs the programs above, cpu runs the plain-loop reference.

type CpuBackend = {
  data: { get(id: unknown): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: "float32", values: Float32Array): TensorInfo;
};

function cpuValues(backend: CpuBackend, t: TensorInfo): Float32Array {
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

/** The named kernel inputs, in order; throws when one is missing. */
function take(inputs: NamedTensorInfoMap, names: string[]): TensorInfo[] {
  return names.map((name) => {
    const t = inputs[name];
    if (!t) throw new Error(`convBnRelu kernel: missing input ${name}`);
    return t;
  });
}

function attrsOf(attrs: NamedAttrMap | undefined): ConvBnReluKernelAttrs {
  if (!attrs) throw new Error("convBnRelu kernel: missing attrs {strides, pad}");
  return attrs as unknown as ConvBnReluKernelAttrs;
}

/** The optional running-statistics inputs of ConvBnReluTrain: both or neither. */
function movingOf(
  inputs: NamedTensorInfoMap,
  attrs?: NamedAttrMap,
): MovingStatsInputs | undefined {
  const { movingMean, movingVariance } = inputs;
  if (!movingMean && !movingVariance) return undefined;
  const momentum = attrsOf(attrs).momentum;
  if (!movingMean || !movingVariance || momentum === undefined) {
    throw new Error(
      "convBnRelu kernel: movingMean, movingVariance and the momentum attr go together",
    );
  }
  return { movingMean, movingVariance, momentum };
}

function geometryOf(x: TensorInfo, filter: TensorInfo, attrs?: NamedAttrMap): ConvGeometry {
  const a = attrsOf(attrs);
  return convGeometry(x.shape, filter.shape, a.strides, a.pad);
}

// Each kernel registers a webgpu and a cpu function of one shape (take the inputs, the geometry,
// run); `duplicates` pairs them. Deliberate: tfjs takes one registration object per backend and
// what differs is the inputs and what runs; the plumbing (take, geometryOf, cpuValues) is shared.
registerKernel({
  kernelName: CONV_BN_RELU_TRAIN,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const [x, filter, gamma, beta] = take(inputs, ["x", "filter", "gamma", "beta"]);
    const g = geometryOf(x, filter, attrs);
    const eps = attrsOf(attrs).epsilon;
    const moving = movingOf(inputs, attrs);
    return runConvBnReluTrain(backend as WebGPUBackend, x, filter, gamma, beta, g, eps, moving);
  },
});

registerKernel({
  kernelName: CONV_BN_RELU_TRAIN,
  backendName: "cpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const cpu = backend as unknown as CpuBackend;
    const [x, filter, gamma, beta] = take(inputs, ["x", "filter", "gamma", "beta"]);
    const g = geometryOf(x, filter, attrs);
    const eps = attrsOf(attrs).epsilon;
    const ref = convBnReluTrainRef(
      cpuValues(cpu, x),
      cpuValues(cpu, filter),
      cpuValues(cpu, gamma),
      cpuValues(cpu, beta),
      g,
      eps,
    );
    const outShape = [g.batch, g.outH, g.outW, g.outC];
    const c = g.outC;
    const moving = movingOf(inputs, attrs);
    const updated = moving
      ? [
        bnMovingAverageRef(
          cpuValues(cpu, moving.movingMean),
          ref.stats.subarray(0, c),
          moving.momentum,
        ),
        bnMovingAverageRef(
          cpuValues(cpu, moving.movingVariance),
          ref.stats.subarray(c, 2 * c),
          moving.momentum,
        ),
      ]
      : [];
    return [
      cpu.makeTensorInfo(outShape, "float32", ref.y),
      cpu.makeTensorInfo(outShape, "float32", ref.z),
      cpu.makeTensorInfo([3, c], "float32", ref.stats),
      ...updated.map((v) => cpu.makeTensorInfo([c], "float32", v)),
    ];
  },
});

registerKernel({
  kernelName: CONV_BN_RELU_INFER,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const [x, filter, scale, shift] = take(inputs, ["x", "filter", "scale", "shift"]);
    const g = geometryOf(x, filter, attrs);
    return runConvBnReluInfer(backend as WebGPUBackend, x, filter, scale, shift, g);
  },
});

registerKernel({
  kernelName: CONV_BN_RELU_INFER,
  backendName: "cpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const cpu = backend as unknown as CpuBackend;
    const [x, filter, scale, shift] = take(inputs, ["x", "filter", "scale", "shift"]);
    const g = geometryOf(x, filter, attrs);
    const y = convBnReluInferRef(
      cpuValues(cpu, x),
      cpuValues(cpu, filter),
      cpuValues(cpu, scale),
      cpuValues(cpu, shift),
      g,
    );
    return cpu.makeTensorInfo([g.batch, g.outH, g.outW, g.outC], "float32", y);
  },
});
