// The three convolution passes every conv op here runs (conv + BN + ReLU, conv + bias + ReLU),
// each with the tile config its op's plan gives it (tile_plan.ts), and the one switch to the
// naive oracle kernels (the FMNIST_NAIVE_KERNELS flag,
// src/flags.ts): by default the generated tiled kernels (conv/gemm.ts), else
// src/ops/conv/conv_fwd_naive.wgsl, conv_bwd_data_naive.wgsl, conv_bwd_filter_naive.wgsl (one output
// element per invocation; test shapes only, see their headers).

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./geometry.ts";
import {
  type Dispatch,
  type DispatchLayout,
  FlatKernelProgram,
  runProgram,
  splitGroups,
} from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { bindingNames, type ConvEpilogue, epilogueSnippet, GEOMETRY_FIELDS } from "./gemm_wgsl.ts";
import {
  convBackpropData,
  convBackpropFilter,
  convForward,
  flat,
  geometryUniforms,
} from "./gemm.ts";
import { useNaiveKernels } from "../../flags.ts";
import { tileConfigFor, type TilePlan } from "./tile_plan.ts";

/** Naive conv (oracle): one output element per invocation; see src/ops/conv/conv_fwd_naive.wgsl. */
export class ConvFwdNaiveProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout;
  dispatch: Dispatch;
  variableNames: string[];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "stride : vec2<i32>, pad : vec2<i32>,";
  size = true;
  private epilogue: ConvEpilogue;

  constructor(g: ConvGeometry, epilogue: ConvEpilogue) {
    this.outputShape = [g.batch, g.outH, g.outW, g.outC];
    this.epilogue = epilogue;
    this.variableNames = bindingNames("fwd", epilogue);
    this.dispatchLayout = { x: [0, 1, 2, 3] };
    const size = this.outputShape.reduce((a, b) => a * b, 1);
    const [gx, gz] = splitGroups(Math.ceil(size / 64));
    this.dispatch = [gx, 1, gz];
    this.shaderKey = `convFwdNaive_${epilogue}`;
  }

  getUserCode(): string {
    return epilogueSnippet(this.epilogue, 1) + wgsl("conv/conv_fwd_naive.wgsl");
  }
}

/** The naive backward kernels: flat grid, one output element per invocation, geometry uniforms. */
const NAIVE_BWD_UNIFORMS = GEOMETRY_FIELDS.map((f) => `${f} : i32,`).join(" ");
class ConvBwdDataNaiveProgram extends FlatKernelProgram {}
class ConvBwdFilterNaiveProgram extends FlatKernelProgram {}

/** conv(x, filter) with an epilogue (z; y = relu(z*scale + shift); y = relu(z + bias)). */
export function runConvForward(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  epilogue: ConvEpilogue,
  plan: TilePlan,
  perChannel: TensorInfo[] = [],
): TensorInfo {
  if (!useNaiveKernels()) {
    const config = tileConfigFor(plan, "fwd", g, backend);
    return convForward(backend, x, filter, g, epilogue, perChannel, config);
  }
  return runProgram(backend, new ConvFwdNaiveProgram(g, epilogue), [x, filter, ...perChannel], [
    { type: "int32" as const, data: [g.strideH, g.strideW] },
    { type: "int32" as const, data: [g.padTop, g.padLeft] },
  ]);
}

/** The naive backward kernels: program class (its name is what profiles show), WGSL, bindings. */
const NAIVE_BWD = {
  data: {
    Program: ConvBwdDataNaiveProgram,
    kernel: "conv/conv_bwd_data_naive.wgsl",
    bindings: ["dz", "w"],
  },
  filter: {
    Program: ConvBwdFilterNaiveProgram,
    kernel: "conv/conv_bwd_filter_naive.wgsl",
    bindings: ["dz", "x"],
  },
};

/** Runs a naive backward kernel on flat views of its two inputs; returns the output as `shape`. */
function runNaiveBackward(
  backend: WebGPUBackend,
  k: (typeof NAIVE_BWD)["data"],
  inputs: TensorInfo[],
  shape: number[],
  g: ConvGeometry,
): TensorInfo {
  const program = new k.Program(k.kernel, {
    variableNames: k.bindings,
    uniforms: NAIVE_BWD_UNIFORMS,
    outputSize: shape.reduce((a, b) => a * b, 1),
  });
  const out = runProgram(backend, program, inputs.map(flat), geometryUniforms(g));
  return { dataId: out.dataId, shape, dtype: "float32" };
}

// One entry point per backprop kernel; the naive path they share is runNaiveBackward.

/** dx (N, H, W, Cin) from dz (N, Ho, Wo, Cout) and the filter. */
export function runBackpropData(
  backend: WebGPUBackend,
  dz: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo {
  if (!useNaiveKernels()) {
    return convBackpropData(backend, dz, filter, g, tileConfigFor(plan, "bwdData", g, backend));
  }
  const shape = [g.batch, g.inH, g.inW, g.inC];
  return runNaiveBackward(backend, NAIVE_BWD.data, [dz, filter], shape, g);
}

/** dfilter (KH, KW, Cin, Cout) from dz and x. */
export function runBackpropFilter(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
  plan: TilePlan,
): TensorInfo {
  if (!useNaiveKernels()) {
    return convBackpropFilter(backend, dz, x, g, tileConfigFor(plan, "bwdFilter", g, backend));
  }
  const shape = [g.kH, g.kW, g.inC, g.outC];
  return runNaiveBackward(backend, NAIVE_BWD.filter, [dz, x], shape, g);
}
