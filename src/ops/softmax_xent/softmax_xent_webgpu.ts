// The WebGPU kernels of softmaxCrossEntropyWithCount (softmax_xent.ts): the loss and the count in
// one single-workgroup multi-output pass, the logits' gradient in one flat pass.

import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { WebGPUBackend, WebGPUProgram } from "@tensorflow/tfjs-backend-webgpu";
import { runProgram } from "../backend/webgpu_program.ts";
import { wgsl } from "../backend/wgsl.ts";
import { MultiOutputProgram, runMultiOutputProgram } from "../backend/webgpu_multi_output.ts";
import { smoothingOf, SOFTMAX_XENT, SOFTMAX_XENT_GRAD } from "./softmax_xent.ts";

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

const asScalar = (t: TensorInfo): TensorInfo => ({ dataId: t.dataId, shape: [], dtype: t.dtype });

export const softmaxXentWebgpu: KernelConfig = {
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

export const softmaxXentGradWebgpu: KernelConfig = {
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
