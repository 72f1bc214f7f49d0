// The WebGPU kernel of biasActGrad (bias_act_grad.ts): one multi-output pass, dz (ReLU) and the
// per-channel sums in lanes of 4 channels (src/ops/wgsl/channel_sums.wgsl).

import type { KernelConfig } from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { UsageError } from "../../errors.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import {
  activationOf,
  BIAS_ACT_GRAD,
  BIAS_ACT_GRAD_MAX_ROWS,
  biasActGradMaxRows,
  sizes,
} from "./bias_act_grad.ts";

const CHANNEL_LANES = 4;
const WORKGROUP = 64;

class BiasActGradProgram extends MultiOutputProgram {
  readonly shaderKey: string;
  readonly outputNames: string[];
  readonly variableNames: string[];
  override readonly uniforms = "items : i32, groups : i32,";
  override readonly everyInvocation = true;
  override readonly vec4: boolean;
  private readonly relu: boolean;

  constructor(relu: boolean, vec4: boolean) {
    super();
    this.relu = relu;
    this.vec4 = vec4;
    this.shaderKey = `biasActGrad_${relu ? "relu" : "linear"}`;
    this.outputNames = relu ? ["dz", "dbias"] : ["dbias"];
    this.variableNames = relu ? ["dy", "y"] : ["dy"];
  }

  getUserCode(): string {
    const element = this.vec4
      ? "alias VT = vec4<f32>;\nconst VW : i32 = 4;"
      : "alias VT = f32;\nconst VW : i32 = 1;";
    const gradAt = this.relu
      ? "fn gradAt(i : i32) -> VT {\n  let d = select(VT(0.0), dy[i], y[i] > VT(0.0));\n" +
        "  dz[i] = d;\n  return d;\n}"
      : "fn gradAt(i : i32) -> VT {\n  return dy[i];\n}";
    return [element, gradAt, wgsl("bias_act_grad/bias_act_grad.wgsl")].join(
      "\n",
    );
  }
}

export const biasActGradWebgpu: KernelConfig = {
  kernelName: BIAS_ACT_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, attrs, backend }) => {
    const activation = activationOf(attrs);
    const { dy, y, c, rows } = sizes(inputs, activation);
    if (rows > biasActGradMaxRows()) {
      throw new UsageError(
        `${BIAS_ACT_GRAD}: at most ${BIAS_ACT_GRAD_MAX_ROWS} rows (llvmpipe's loop cap), got ${rows}`,
      );
    }
    const relu = activation === "relu";
    const b = backend as unknown as WebGPUBackend;
    if (rows === 0) {
      // No rows: dz is empty, dbias sums nothing (the kernel would write neither).
      const dbias = b.makeTensorInfo([c], "float32", new Float32Array(c));
      return relu ? [b.makeTensorInfo(dy.shape, "float32", new Float32Array(0)), dbias] : [dbias];
    }
    const vec4 = c % 4 === 0;
    const groups = vec4 ? c / 4 : c;
    const tiles = Math.ceil(groups / CHANNEL_LANES);
    return runMultiOutputProgram(
      b,
      new BiasActGradProgram(relu, vec4),
      relu ? [dy.shape, [c]] : [[c]],
      relu ? [dy, y!] : [dy],
      tiles * WORKGROUP,
      [{ type: "int32", data: [rows] }, { type: "int32", data: [groups] }],
    );
  },
};
