// Probe: would fusing the 2x2 max-pool into the conv + BN + ReLU block pay on this adapter?
// Times, on the GPU (tf.time's kernelMs, timestamp queries; median of --repeats, alternating),
// at enhanced's pooled layers (batch 128: 28x28x32 and 14x14x64):
//   separate  an elementwise apply pass (writes y; the block's pass until the apply pass began
//             merging the batch statistics itself, src/ops/conv_bn_relu/bn_relu_apply.wgsl) + MaxPool2
//   fused     a prototype apply pass that writes the pooled y directly (below: measurement
//             only, not a product kernel)
//   pool grad MaxPool2Grad alone: the most a backward fusion could save, since the block's
//             reduce and dz passes would still read z and dy (one dy load per window instead of
//             four) and recompute each window's argmax from z.
//   deno run -A bench/probes/max_pool2_fusion_probe.ts [--batch 128] [--repeats 15]
// Measured (llvmpipe, load 4-5, two runs): 28x28x32 apply + pool 10.1 / 26.1 ms, prototype
// 6.8 / 12.6 ms, pool grad 11.3 / 16.1 ms; 14x14x64 4.4 / 6.6, 1.9 / 3.6, 2.6 / 4.8 ms. Outputs
// identical (max |diff| 0). Decision and step context: src/ops/max_pool2/max_pool2.ts's header.

import * as tf from "@tensorflow/tfjs-core";
import type { TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { MAX_POOL2_GRAD, maxPool2 } from "../../src/ops/max_pool2/max_pool2.ts";
import { runProgram, splitGroups } from "../../src/ops/backend/webgpu_program.ts";
import { medianGpuMs, roundRobin } from "../timing.ts";
import { arg } from "./probe_args.ts";

/**
 * The probe's two apply passes: z, the batch statistics, gamma and beta read as vec4s, one
 * flat grid of `invocations` (64 per workgroup) writing `outputShape`.
 */
abstract class ApplyProbeProgram implements WebGPUProgram {
  outputShape: number[];
  abstract shaderKey: string;
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: [number, number, number];
  variableNames = ["z", "stats", "gamma", "beta"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputComponent = 4;
  variableComponents = [4, 4, 4, 4];

  constructor(outputShape: number[], invocations: number) {
    this.outputShape = outputShape;
    const [gx, gz] = splitGroups(Math.ceil(invocations / 64));
    this.dispatch = [gx, 1, gz];
  }

  abstract getUserCode(): string;
}

/** y = relu(gamma * (z - mean) * invStd + beta), 16 rows of one channel group per invocation. */
class ElementwiseApply extends ApplyProbeProgram {
  shaderKey = "probe_bnReluApply_vec4";

  constructor(zShape: number[]) {
    const rows = zShape[0] * zShape[1] * zShape[2];
    super(zShape, (Math.ceil(rows / 16) * zShape[3]) / 4);
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  let groups = uniforms.zShape[3] / 4;
  let rows = uniforms.zShape[0] * uniforms.zShape[1] * uniforms.zShape[2];
  let rb = index / groups;
  let c = index - rb * groups;
  let r0 = rb * 16;
  if (r0 >= rows) {
    return;
  }
  let mean = stats[c];
  let scale = gamma[c] * stats[2 * groups + c];
  let b = beta[c];
  for (var r = r0; r < min(rows, r0 + 16); r++) {
    let i = r * groups + c;
    result[i] = max((z[i] - mean) * scale + b, vec4<f32>(0.0));
  }
}`;
  }
}

/** Prototype: y_pooled = max over the 2x2 window of relu(gamma * (z - mean) * invStd + beta). */
class ApplyPoolPrototype extends ApplyProbeProgram {
  shaderKey = "probe_bnReluApplyPool2_vec4";

  constructor(zShape: number[]) {
    const [n, h, w, c] = zShape;
    super([n, h >> 1, w >> 1, c], (n * (h >> 1) * (w >> 1) * c) / 4);
  }

  getUserCode(): string {
    return `
fn main(index : i32) {
  let groups = uniforms.zShape[3] / 4;
  let outH = uniforms.outShape[1];
  let outW = uniforms.outShape[2];
  if (index >= uniforms.outShape[0] * outH * outW * groups) {
    return;
  }
  let c = index % groups;
  let pixel = index / groups;
  let j = pixel % outW;
  let rowIndex = pixel / outW;
  let i = rowIndex % outH;
  let n = rowIndex / outH;
  let rowStride = uniforms.zShape[2] * groups;
  let base = ((n * uniforms.zShape[1] + 2 * i) * uniforms.zShape[2] + 2 * j) * groups + c;
  let mean = stats[c];
  let scale = gamma[c] * stats[2 * groups + c];
  let b = beta[c];
  let y00 = (z[base] - mean) * scale + b;
  let y01 = (z[base + groups] - mean) * scale + b;
  let y10 = (z[base + rowStride] - mean) * scale + b;
  let y11 = (z[base + rowStride + groups] - mean) * scale + b;
  result[index] = max(max(max(y00, y01), max(y10, y11)), vec4<f32>(0.0));
}`;
  }
}

const adapter = await initTf("webgpu");
const backend = tf.backend() as unknown as WebGPUBackend;
const batch = Number(arg("batch", "128")), repeats = Number(arg("repeats", "15"));
console.log(`${describeAdapter(adapter)}; batch ${batch}, GPU ms, median of ${repeats}`);
for (const [h, c] of [[28, 32], [14, 64]]) {
  const shape = [batch, h, h, c];
  const z = tf.randomNormal(shape, 0, 1, "float32", 1);
  const stats = tf.concat([tf.zeros([1, c]), tf.ones([1, c]), tf.ones([1, c])]);
  const gamma = tf.randomUniform([c], 0.5, 1.5, "float32", 2);
  const beta = tf.randomUniform([c], -0.1, 0.1, "float32", 3);
  const dy = tf.randomNormal([batch, h >> 1, h >> 1, c], 0, 1, "float32", 4);
  const inputs = [z, stats, gamma, beta] as unknown as TensorInfo[];
  const asTensor = (t: TensorInfo) => tf.engine().makeTensorFromTensorInfo(t);
  const separate = () => {
    const y = asTensor(runProgram(backend, new ElementwiseApply(shape), inputs));
    const pooled = maxPool2(y as tf.Tensor4D);
    return [y, pooled];
  };
  const fused = () => [asTensor(runProgram(backend, new ApplyPoolPrototype(shape), inputs))];
  const y = asTensor(runProgram(backend, new ElementwiseApply(shape), inputs));
  const poolGrad = () => [tf.engine().runKernel(MAX_POOL2_GRAD, { dy, x: y }) as tf.Tensor];
  // Same values both ways (the prototype is only worth timing if it computes the same thing).
  const [a, b] = [separate(), fused()];
  const diff = tf.max(tf.abs(tf.sub(a[1], b[0])));
  console.log(`  ${shape}: max |separate - fused| = ${(await diff.data())[0]}`);
  tf.dispose([...a, ...b, diff]);
  const [s, f, g] = (await roundRobin([separate, fused, poolGrad], {
    warmup: 1,
    repeats,
    gpu: true,
  })).map((v) => medianGpuMs(v) ?? NaN);
  console.log(
    `  [${shape}] forward: apply + pool ${s.toFixed(2)} ms (2 dispatches), fused prototype ` +
      `${f.toFixed(2)} ms (1), saves ${(s - f).toFixed(2)} ms; pool grad ${g.toFixed(2)} ms ` +
      `(1 dispatch): the backward's ceiling`,
  );
  tf.dispose([z, stats, gamma, beta, dy, y]);
}
