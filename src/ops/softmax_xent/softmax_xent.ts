// Training loss and accuracy counter of the step as our own kernels (float32):
//   SoftmaxXent      inputs {logits (N, C), labels (N, C)}, attrs {smoothing};
//                    outputs [loss (scalar), correct (scalar)]: mean smoothed cross-entropy and
//                    the count of rows with argmax(logits) == argmax(labels)
//   SoftmaxXentGrad  inputs {logits, labels, dy}, attrs {smoothing}; output dlogits (N, C)
// 2 dispatches per step (src/ops/softmax_xent/softmax_xent_loss.wgsl, one multi-output pass for both values,
// and softmax_xent_grad.wgsl; 3 until the loss pass wrote both) where crossEntropy +
// countCorrect (src/train/step.ts) and their backward issue ~45 tfjs ops.
// Same math as crossEntropy: t = labels * (1 - s) + s / C, loss = -mean_r sum_c t (l - lse).
// The cpu reference below (float64 accumulation) serves the cpu backend and the tests.
// Measured (bench/step_parts_probe.ts, llvmpipe, batch 128): loss + count + dlogits 21.0 ms and
// 41 dispatches with tfjs ops, 14.0 ms and 5 here (that probe runs the forward twice).

import * as tf from "@tensorflow/tfjs-core";
import { type TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { runProgram } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import { type CpuBackend, cpuKernel, cpuValues } from "../backend/cpu_kernel.ts";
import type { OpKernels } from "../backend/registration.ts";
import type { GradConfig, KernelConfig } from "@tensorflow/tfjs-core";

export const SOFTMAX_XENT = "SoftmaxXent";
export const SOFTMAX_XENT_GRAD = "SoftmaxXentGrad";

/** Mean cross-entropy and correct count of a batch; differentiable w.r.t. the logits. */
export function softmaxCrossEntropyWithCount(
  labels: tf.Tensor2D,
  logits: tf.Tensor2D,
  smoothing = 0,
): { loss: tf.Scalar; correct: tf.Scalar } {
  if (logits.rank !== 2 || labels.shape.join() !== logits.shape.join()) {
    throw new Error(`softmaxCrossEntropy: logits [${logits.shape}], labels [${labels.shape}]`);
  }
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`label smoothing ${smoothing}`);
  if (logits.dtype !== "float32") throw new Error(`softmaxCrossEntropy: logits ${logits.dtype}`);
  // Labels may be int32 (tf.oneHot): the kernels convert (f32(...)) as they read.
  const [loss, correct] = tf.engine().runKernel(SOFTMAX_XENT, { logits, labels }, {
    smoothing,
  }) as tf.Scalar[];
  return { loss, correct };
}

// ---- CPU reference ------------------------------------------------------------------------------

function rowStats(l: Float32Array, base: number, classes: number) {
  let mx = l[base];
  for (let c = 1; c < classes; c++) mx = Math.max(mx, l[base + c]);
  let sumExp = 0;
  for (let c = 0; c < classes; c++) sumExp += Math.exp(l[base + c] - mx);
  return { mx, sumExp, lse: mx + Math.log(sumExp) };
}

function argMax(a: Float32Array, base: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (a[base + c] > a[base + best]) best = c;
  return best;
}

export function softmaxXentRef(
  logits: Float32Array,
  labels: Float32Array,
  rows: number,
  classes: number,
  s: number,
): { loss: number; correct: number } {
  let sum = 0, correct = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const { lse } = rowStats(logits, base, classes);
    for (let c = 0; c < classes; c++) {
      sum += (labels[base + c] * (1 - s) + s / classes) * (logits[base + c] - lse);
    }
    if (argMax(logits, base, classes) === argMax(labels, base, classes)) correct++;
  }
  return { loss: -sum / rows, correct };
}

export function softmaxXentGradRef(
  logits: Float32Array,
  labels: Float32Array,
  rows: number,
  classes: number,
  s: number,
  dy: number,
): Float32Array {
  const out = new Float32Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const { mx, sumExp } = rowStats(logits, base, classes);
    let total = 0;
    for (let c = 0; c < classes; c++) total += labels[base + c] * (1 - s) + s / classes;
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[base + c] - mx) / sumExp;
      const t = labels[base + c] * (1 - s) + s / classes;
      out[base + c] = (p * total - t) * dy / rows;
    }
  }
  return out;
}

// ---- WebGPU programs ----------------------------------------------------------------------------

/** One workgroup reduces the batch into the loss and the correct count (one dispatch). */
class SoftmaxXentLossProgram extends MultiOutputProgram {
  readonly shaderKey = "softmaxXentLoss";
  readonly outputNames = ["loss", "correct"];
  readonly variableNames = ["logits", "labels"];
  override readonly uniforms = "smoothing : f32,";
  override readonly everyInvocation = true;

  getUserCode(): string {
    return wgsl("softmax_xent/softmax_xent_loss.wgsl");
  }
}

class SoftmaxXentGradProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "softmaxXentGrad";
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  variableNames = ["logits", "labels", "dy"];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = "smoothing : f32,";

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatch = [Math.ceil(shape[0] / 64), 1, 1];
  }

  getUserCode(): string {
    return wgsl("softmax_xent/softmax_xent_grad.wgsl");
  }
}

const smoothingOf = (attrs: unknown) => Math.fround((attrs as { smoothing: number }).smoothing);
const asScalar = (t: TensorInfo): TensorInfo => ({ dataId: t.dataId, shape: [], dtype: t.dtype });

const softmaxXentWebgpu: KernelConfig = {
  kernelName: SOFTMAX_XENT,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
    const s = [{ type: "float32" as const, data: [smoothingOf(attrs)] }];
    const outs = runMultiOutputProgram(
      backend as WebGPUBackend,
      new SoftmaxXentLossProgram(),
      [[1], [1]],
      [logits, labels],
      64, // one workgroup
      s,
    );
    return outs.map(asScalar);
  },
};

/** The CPU kernels' shared arguments: logits and labels on the host, [rows, classes], smoothing. */
function refInputs(inputs: Record<string, TensorInfo>, cpu: CpuBackend, attrs: unknown) {
  const [rows, classes] = inputs.logits.shape;
  const logits = cpuValues(cpu, inputs.logits);
  return [logits, cpuValues(cpu, inputs.labels), rows, classes, smoothingOf(attrs)] as const;
}

const softmaxXentCpu = cpuKernel(SOFTMAX_XENT, (inputs, cpu, attrs) => {
  const r = softmaxXentRef(...refInputs(inputs, cpu, attrs));
  return [r.loss, r.correct].map((v) => cpu.makeTensorInfo([], "float32", Float32Array.of(v)));
});

const softmaxXentGradWebgpu: KernelConfig = {
  kernelName: SOFTMAX_XENT_GRAD,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { logits, labels, dy } = inputs as Record<string, TensorInfo>;
    return runProgram(
      backend as WebGPUBackend,
      new SoftmaxXentGradProgram(logits.shape),
      [logits, labels, dy],
      [{ type: "float32", data: [smoothingOf(attrs)] }],
    );
  },
};

const softmaxXentGradCpu = cpuKernel(SOFTMAX_XENT_GRAD, (inputs, cpu, attrs) => {
  const out = softmaxXentGradRef(...refInputs(inputs, cpu, attrs), cpuValues(cpu, inputs.dy)[0]);
  return cpu.makeTensorInfo(inputs.logits.shape, "float32", out);
});

const softmaxXentGradient: GradConfig = {
  kernelName: SOFTMAX_XENT,
  inputsToSave: ["logits", "labels"],
  gradFunc: (dy, saved, attrs) => {
    const [logits, labels] = saved;
    // dy = [dLoss, dCorrect]; the count is not differentiable.
    const dLoss = Array.isArray(dy) ? dy[0] : dy;
    return {
      logits: () =>
        tf.engine().runKernel(SOFTMAX_XENT_GRAD, { logits, labels, dy: dLoss }, {
          ...(attrs as unknown as Record<string, number>),
        }) as tf.Tensor,
      labels: () => tf.zerosLike(labels),
    };
  },
};

/** This op's kernels and gradients; src/ops/registry.ts registers them. */
export const softmaxXentKernels: OpKernels = {
  webgpu: [softmaxXentWebgpu, softmaxXentGradWebgpu],
  cpu: [softmaxXentCpu, softmaxXentGradCpu],
  gradients: [softmaxXentGradient],
};
