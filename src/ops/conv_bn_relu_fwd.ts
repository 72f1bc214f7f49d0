// WebGPU programs of the fused conv + batch-norm + ReLU forward, and the code that runs them.
//
// Training forward (ConvBnReluTrain) = 4 dispatches, because batch statistics need a grid-wide
// reduction between the conv and the normalisation:
//   1. conv        x, w -> z                    conv_bn_relu_fwd_{vec4,cout4,}.wgsl + epilogue_z
//   2. bn_stats    z -> partials (P, 3, Cout)   per-chunk count/mean/M2, fully parallel
//   3. finalize    partials -> stats (3, Cout)  Chan's merge; Cout invocations
//   4. apply       z, stats, gamma, beta -> y   elementwise normalise + ReLU
// The conv writes z (a kernel output saved for backward); passes 2-3 re-read it once. Fusing the
// partials into the conv epilogue would need a second output buffer, which tfjs programs do not
// have (one `result` binding), or a packed buffer and a copy of z out of it.
// Inference (ConvBnReluInfer) = 1 dispatch: the same conv main loop with a scale/shift/ReLU
// epilogue (BN folded on the host). On llvmpipe (batch 128, 3x3, 32->32 at 28x28 and 64->64 at
// 14x14) the conv is ~85% of the training forward, bn_stats ~5%, apply ~8%, finalize < 0.1%.
//
// Shader keys hold compile-time facts only (kernel version, epilogue, tile size, vector width);
// every shape travels as a uniform, so one pipeline serves all batch sizes.
//
// Importing this module registers both kernels for webgpu and cpu (src/ops/register.ts does).

import {
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { kernelSource, runProgram } from "./webgpu_program.ts";
import { type ConvGeometry, convGeometry } from "./conv_geometry.ts";
import {
  CONV_BN_RELU_INFER,
  CONV_BN_RELU_TRAIN,
  type ConvBnReluKernelAttrs,
} from "./conv_bn_relu.ts";
import { convBnReluInferRef, convBnReluTrainRef } from "./conv_bn_relu_ref.ts";

type DispatchLayout = { x: number[]; y?: number[]; z?: number[] };
type Dispatch = [number, number, number];

/** `FMNIST_NAIVE_KERNELS=1` selects the v1 conv (one output per invocation): oracle, fallback. */
export function useNaiveKernels(): boolean {
  try {
    return Deno.env.get("FMNIST_NAIVE_KERNELS") === "1";
  } catch {
    return false; // no --allow-env: default kernels
  }
}

const MAX_GROUPS_PER_DIM = 65535;
/** Splits `groups` workgroups over two grid axes (x <= 65535). */
function splitGroups(groups: number): [number, number] {
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1];
  const z = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / z), z];
}

type Epilogue = "z" | "infer";

/** Which tiled conv kernel a shape gets (compile-time: part of the shader key). */
export type ConvVariant = "vec4" | "cout4" | "scalar";

const VARIANTS: Record<
  ConvVariant,
  { file: string; rows: number; channels: number; xWidth: number; wWidth: number }
> = {
  // Cin % 4 == 0 and Cout % 4 == 0: 16 rows x 16 channels, vec4 x and w loads, main() generated
  // by vec4ConvMain below (see the kernel header for the tile-size measurements).
  vec4: { file: "conv_bn_relu_fwd_vec4", rows: 16, channels: 16, xWidth: 4, wWidth: 4 },
  // Cout % 4 == 0 only (the first layer): 8 x 8, scalar x and vec4 w loads.
  cout4: { file: "conv_bn_relu_fwd_cout4", rows: 8, channels: 8, xWidth: 1, wWidth: 4 },
  // Anything else: 4 rows x 4 channels, scalar loads.
  scalar: { file: "conv_bn_relu_fwd", rows: 4, channels: 4, xWidth: 1, wWidth: 1 },
};

/** Tiled variants from largest to smallest tile. */
const VARIANT_ORDER: ConvVariant[] = ["vec4", "cout4", "scalar"];
let largestVariant: ConvVariant = "vec4";

/**
 * Caps the forward conv tile (default: no cap, "vec4"). The browser pages cap it at "scalar"
 * (4 x 4): in Chromium 156's SwiftShader (Dawn/Tint) the 16 x 16 vec4 program kills the GPU
 * process at pipeline creation, and the 8 x 8 cout4 inference program did not finish within
 * 60 s (measured under load; the 4 x 4 one compiles and runs a 28x28 layer in ~0.2 s).
 */
export function setLargestConvVariant(v: ConvVariant): void {
  largestVariant = v;
}

export function convVariant(g: ConvGeometry): ConvVariant {
  const wanted: ConvVariant = g.outC % 4 !== 0 ? "scalar" : g.inC % 4 === 0 ? "vec4" : "cout4";
  const cap = VARIANT_ORDER.indexOf(largestVariant);
  return VARIANT_ORDER[Math.max(VARIANT_ORDER.indexOf(wanted), cap)];
}

/**
 * Tiled conv (v2/v3), one pass, variant by channel counts: kernels/conv_bn_relu_fwd_vec4.wgsl,
 * conv_bn_relu_fwd_cout4.wgsl or conv_bn_relu_fwd.wgsl.
 */
export class ConvBnReluFwdProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout = { x: [1, 2], y: [3], z: [0] }; // not flat: main() takes no index
  dispatch: Dispatch;
  variableNames: string[];
  variableComponents: number[];
  outputComponent: number;
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "stride : vec2<i32>, pad : vec2<i32>,";
  readonly variant: ConvVariant;
  private epilogue: Epilogue;

  constructor(g: ConvGeometry, epilogue: Epilogue) {
    this.outputShape = [g.batch, g.outH, g.outW, g.outC];
    this.epilogue = epilogue;
    this.variableNames = epilogue === "infer" ? ["x", "w", "scale", "shift"] : ["x", "w"];
    this.variant = convVariant(g);
    const { rows: tileRows, channels, xWidth, wWidth } = VARIANTS[this.variant];
    // Output (and scale/shift of the inference epilogue) as vec4 when Cout % 4 == 0.
    this.outputComponent = wWidth;
    this.variableComponents = this.variableNames.map((_, i) => [xWidth, wWidth][i] ?? wWidth);
    const rows = g.batch * g.outH * g.outW;
    const invocations = Math.ceil(rows / tileRows) * Math.ceil(g.outC / channels);
    // The kernel rebuilds its flat id as global_id.x + global_id.y * 64 * groups.x.
    const [gx, gy] = splitGroups(Math.ceil(invocations / 64));
    this.dispatch = [gx, gy, 1];
    this.shaderKey = `convBnReluFwd_${this.variant}_${epilogue}_r${tileRows}c${channels}`;
  }

  getUserCode(): string {
    const { file, rows, channels } = VARIANTS[this.variant];
    const main = this.variant === "vec4" ? vec4ConvMain(rows, channels / 4) : "";
    return vectorAlias(this.outputComponent) + epilogueSource(this.epilogue) +
      kernelSource(file) + main;
  }
}

/**
 * main() of conv_bn_relu_fwd_vec4.wgsl for a tile of `rows` output rows x `groups` groups of 4
 * output channels, unrolled (one vec4 accumulator per row and group: WGSL arrays and loops went
 * to scratch memory on llvmpipe and ran at 0.6x).
 */
export function vec4ConvMain(rows: number, groups: number): string {
  const R = [...Array(rows).keys()];
  const C = [...Array(groups).keys()];
  const J = [0, 1, 2, 3];
  const lines = (f: (i: number) => string, xs: number[], pad: string) =>
    xs.map((i) => pad + f(i)).join("\n");
  const wOffset = (j: number, c: number) =>
    [j === 0 ? "" : j === 1 ? " + outC4" : ` + ${j} * outC4`, c === 0 ? "" : ` + ${c}`].join("");
  return `
const TILE_ROWS = ${rows};
const TILE_GROUPS = ${groups};

fn main() {
  let inC4 = uniforms.xShape[3] / 4;
  let kW = uniforms.wShape[1];
  let outC4 = uniforms.wShape[3] / 4;
  let rows = uniforms.outShape[0] * uniforms.outShape[1] * uniforms.outShape[2];
  let blocks = (outC4 + TILE_GROUPS - 1) / TILE_GROUPS;
  let g = i32(globalId.x) + i32(globalId.y) * i32(numWorkgroups.x) * 64;
  let rb = g / blocks;
  let cg = (g - rb * blocks) * TILE_GROUPS; // first channel group (4 channels each)
  let m0 = rb * TILE_ROWS;
  if (m0 >= rows) {
    return;
  }
${lines((r) => `let r${r} = rowOrigin(m0 + ${r}, rows);`, R, "  ")}
${R.map((r) => lines((c) => `var a${r}_${c} = vec4<f32>(0.0);`, C, "  ")).join("\n")}
  for (var kh = 0; kh < uniforms.wShape[0]; kh++) {
    for (var kw = 0; kw < kW; kw++) {
${lines((r) => `let t${r} = tap(r${r}, kh, kw);`, R, "      ")}
${lines((r) => `let k${r} = f32(t${r}.y); // 0 outside the image`, R, "      ")}
      var wi = (kh * kW + kw) * inC4 * 4 * outC4 + cg;
      for (var ci = 0; ci < inC4; ci++) {
${
    J.map((j) => lines((c) => `let w${j}_${c} = w[wi${wOffset(j, c)}];`, C, "        "))
      .join("\n")
  }
${
    R.map((r) =>
      `        let x${r} = x[t${r}.x + ci] * k${r};\n` +
      lines(
        (c) =>
          `a${r}_${c} += x${r}.x * w0_${c} + x${r}.y * w1_${c} + x${r}.z * w2_${c} + x${r}.w * w3_${c};`,
        C,
        "        ",
      )
    ).join("\n")
  }
        wi += 4 * outC4;
      }
    }
  }
${
    R.map((r) =>
      `  if (m0 + ${r} < rows) {\n    let base${r} = (m0 + ${r}) * outC4 + cg;\n` +
      lines(
        (c) =>
          c === 0
            ? `writeOutput(base${r}, cg, a${r}_0);`
            : `if (cg + ${c} < outC4) { writeOutput(base${r} + ${c}, cg + ${c}, a${r}_${c}); }`,
        C,
        "    ",
      ) + "\n  }"
    ).join("\n")
  }
}
`;
}

/** Naive conv (v1): one output element per invocation; see kernels/conv_bn_relu_fwd_v1.wgsl. */
export class ConvBnReluFwdNaiveProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: DispatchLayout;
  dispatch: Dispatch;
  variableNames: string[];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "stride : vec2<i32>, pad : vec2<i32>,";
  size = true;
  private epilogue: Epilogue;

  constructor(g: ConvGeometry, epilogue: Epilogue) {
    this.outputShape = [g.batch, g.outH, g.outW, g.outC];
    this.epilogue = epilogue;
    this.variableNames = epilogue === "infer" ? ["x", "w", "scale", "shift"] : ["x", "w"];
    this.dispatchLayout = { x: [0, 1, 2, 3] };
    const size = this.outputShape.reduce((a, b) => a * b, 1);
    const [gx, gz] = splitGroups(Math.ceil(size / 64));
    this.dispatch = [gx, 1, gz];
    this.shaderKey = `convBnReluFwd_v1_${epilogue}`;
  }

  getUserCode(): string {
    return vectorAlias(1) + epilogueSource(this.epilogue) + kernelSource("conv_bn_relu_fwd_v1");
  }
}

function epilogueSource(epilogue: Epilogue): string {
  return kernelSource(epilogue === "infer" ? "conv_bn_relu_infer" : "conv_bn_relu_fwd_epilogue_z");
}

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

/** Pass 3: merges partials into stats (3, Cout); see kernels/bn_stats_finalize.wgsl. */
export class BnStatsFinalizeProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "bnStatsFinalize";
  dispatchLayout: DispatchLayout = { x: [0, 1] };
  dispatch: Dispatch;
  variableNames = ["partials"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "eps : f32,";

  constructor(outC: number) {
    this.outputShape = [3, outC];
    this.dispatch = [Math.ceil(outC / 64), 1, 1];
  }

  getUserCode(): string {
    return kernelSource("bn_stats_finalize");
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

function convProgram(g: ConvGeometry, epilogue: Epilogue): WebGPUProgram {
  return useNaiveKernels()
    ? new ConvBnReluFwdNaiveProgram(g, epilogue)
    : new ConvBnReluFwdProgram(g, epilogue);
}

function convUniforms(g: ConvGeometry) {
  return [
    { type: "int32" as const, data: [g.strideH, g.strideW] },
    { type: "int32" as const, data: [g.padTop, g.padLeft] },
  ];
}

/** Training forward on the GPU: returns [y, z, stats]; intermediate partials are released. */
export function runConvBnReluTrain(
  backend: WebGPUBackend,
  x: TensorInfo,
  filter: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  g: ConvGeometry,
  epsilon: number,
): [TensorInfo, TensorInfo, TensorInfo] {
  const z = runProgram(backend, convProgram(g, "z"), [x, filter], convUniforms(g));
  const statsProgram = new BnStatsPartialProgram(g.batch * g.outH * g.outW, g.outC);
  const partials = runProgram(backend, statsProgram, [z], [
    { type: "int32", data: [statsProgram.rowsPerChunk] },
  ]);
  const stats = runProgram(backend, new BnStatsFinalizeProgram(g.outC), [partials], [
    { type: "float32", data: [epsilon] },
  ]);
  backend.disposeData(partials.dataId);
  const y = runProgram(backend, new BnReluApplyProgram(z.shape), [z, stats, gamma, beta]);
  return [y, z, stats];
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
  return runProgram(backend, convProgram(g, "infer"), [x, filter, scale, shift], convUniforms(g));
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

function geometryOf(x: TensorInfo, filter: TensorInfo, attrs?: NamedAttrMap): ConvGeometry {
  const a = attrsOf(attrs);
  return convGeometry(x.shape, filter.shape, a.strides, a.pad);
}

registerKernel({
  kernelName: CONV_BN_RELU_TRAIN,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const [x, filter, gamma, beta] = take(inputs, ["x", "filter", "gamma", "beta"]);
    const g = geometryOf(x, filter, attrs);
    const eps = attrsOf(attrs).epsilon;
    return runConvBnReluTrain(backend as WebGPUBackend, x, filter, gamma, beta, g, eps);
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
    return [
      cpu.makeTensorInfo(outShape, "float32", ref.y),
      cpu.makeTensorInfo(outShape, "float32", ref.z),
      cpu.makeTensorInfo([3, g.outC], "float32", ref.stats),
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
