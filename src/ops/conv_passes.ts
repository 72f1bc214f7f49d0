// The three convolution passes every conv op here runs (conv + BN + ReLU, conv + bias + ReLU),
// with the one switch to the naive oracle kernels (the FMNIST_NAIVE_KERNELS flag,
// kernel_flags.ts): by default the generated tiled kernels (conv_gemm.ts), else
// kernels/conv_fwd_naive.wgsl, conv_bwd_data_naive.wgsl, conv_bwd_filter_naive.wgsl (one output
// element per invocation; test shapes only, see their headers).

import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./conv_geometry.ts";
import { kernelSource, runProgram, type Uniform } from "./webgpu_program.ts";
import {
  bindingNames,
  type ConvEpilogue,
  epilogueSnippet,
  GEOMETRY_FIELDS,
} from "./conv_gemm_wgsl.ts";
import { convBackpropData, convBackpropFilter, convForward, flat } from "./conv_gemm.ts";
import { useNaiveKernels } from "./kernel_flags.ts";

type DispatchLayout = { x: number[]; y?: number[]; z?: number[] };
type Dispatch = [number, number, number];

const MAX_GROUPS_PER_DIM = 65535;
/** Splits `groups` workgroups over two grid axes (x <= 65535). */
function splitGroups(groups: number): [number, number] {
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1];
  const z = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / z), z];
}

/** Naive conv (oracle): one output element per invocation; see kernels/conv_fwd_naive.wgsl. */
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
    return epilogueSnippet(this.epilogue, 1) + kernelSource("conv_fwd_naive");
  }
}

/** A naive backward kernel: flat grid, one output element per invocation, geometry uniforms. */
class ConvBwdNaiveProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout = { x: [0] };
  dispatch: Dispatch;
  workgroupSize: [number, number, number] = [64, 1, 1];
  variableNames: string[];
  uniforms = GEOMETRY_FIELDS.map((f) => `${f} : i32,`).join(" ");
  private readonly kernel: string;

  constructor(kernel: string, variableNames: string[], outputSize: number) {
    this.kernel = kernel;
    this.shaderKey = kernel;
    this.variableNames = variableNames;
    this.outputShape = [outputSize];
    const [gx, gy] = splitGroups(Math.ceil(outputSize / 64));
    this.dispatch = [gx, gy, 1];
  }

  getUserCode(): string {
    return kernelSource(this.kernel);
  }
}
class ConvBwdDataNaiveProgram extends ConvBwdNaiveProgram {}
class ConvBwdFilterNaiveProgram extends ConvBwdNaiveProgram {}

function geometryUniforms(g: ConvGeometry): Uniform[] {
  const values = [
    g.batch,
    g.inH,
    g.inW,
    g.inC,
    g.outH,
    g.outW,
    g.outC,
    g.kH,
    g.kW,
    g.strideH,
    g.strideW,
    g.padTop,
    g.padLeft,
    0,
    0,
  ];
  return values.map((v) => ({ type: "int32" as const, data: [v] }));
}

/** conv(x, filter) with an epilogue (z; y = relu(z*scale + shift); y = relu(z + bias)). */
export function runConvForward(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  epilogue: ConvEpilogue,
  perChannel: TensorInfo[] = [],
): TensorInfo {
  if (!useNaiveKernels()) return convForward(backend, x, filter, g, epilogue, perChannel);
  return runProgram(backend, new ConvFwdNaiveProgram(g, epilogue), [x, filter, ...perChannel], [
    { type: "int32" as const, data: [g.strideH, g.strideW] },
    { type: "int32" as const, data: [g.padTop, g.padLeft] },
  ]);
}

/** dx (N, H, W, Cin) from dz (N, Ho, Wo, Cout) and the filter. */
export function runBackpropData(
  backend: WebGPUBackend,
  dz: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  if (!useNaiveKernels()) return convBackpropData(backend, dz, filter, g);
  const program = new ConvBwdDataNaiveProgram(
    "conv_bwd_data_naive",
    ["dz", "w"],
    g.batch * g.inH * g.inW * g.inC,
  );
  const dx = runProgram(backend, program, [flat(dz), flat(filter)], geometryUniforms(g));
  return { dataId: dx.dataId, shape: [g.batch, g.inH, g.inW, g.inC], dtype: "float32" };
}

/** dfilter (KH, KW, Cin, Cout) from dz and x. */
export function runBackpropFilter(
  backend: WebGPUBackend,
  dz: TensorInfo,
  x: TensorInfo,
  g: ConvGeometry,
): TensorInfo {
  if (!useNaiveKernels()) return convBackpropFilter(backend, dz, x, g);
  const program = new ConvBwdFilterNaiveProgram(
    "conv_bwd_filter_naive",
    ["dz", "x"],
    g.kH * g.kW * g.inC * g.outC,
  );
  const df = runProgram(backend, program, [flat(dz), flat(x)], geometryUniforms(g));
  return { dataId: df.dataId, shape: [g.kH, g.kW, g.inC, g.outC], dtype: "float32" };
}
