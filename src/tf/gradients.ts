// Gradients of the tfjs kernels our models differentiate, registered on import.
//
// tfjs-core registers no gradients itself; the `@tensorflow/tfjs` union package does, but it
// brings tfjs-layers, -converter, -data, the WebGL backend and core-js (~240 MB of node_modules,
// ~0.1 s of import time) for these few functions, and tfjs-core's own `dist/gradients/*.js`
// cannot be imported by Deno (extensionless relative imports). So here is the set a training step
// and the tests reach, found by recording every gradient the tape called while training each
// model with dropout, L2, label smoothing and augmentation, fused and stock, plus the stock
// conv + BN + ReLU chain at strides 1 and 2, same and valid (list in GRADIENTS below). A kernel
// missing here fails loudly: tfjs throws "gradient function not found for <kernel>".
//
// The union package also added the chained-op methods (`x.add(y)`); tfjs-core's types still
// declare them but tensors no longer have them at run time: use the functional ops (`tf.add`).
//
// Each one is the textbook derivative; test/gradients_test.ts checks every config against
// central differences on the CPU backend over random shapes (broadcasting included). The fused
// conv + BN + ReLU op registers its own gradient (src/ops/conv_bn_relu/conv_bn_relu_grad.ts).

import * as tf from "@tensorflow/tfjs-core";

type Attrs = Record<string, unknown>;

/** Sums `grad` over the axes along which an input of `shape` was broadcast to grad's shape. */
export function unbroadcast(grad: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, grad.shape);
  const reduced = axes.length > 0 ? tf.sum(grad, axes) : grad;
  return tf.reshape(reduced, shape);
}

/** dy of a reduction (`axis`, keepDims or not) reshaped so that it broadcasts against x. */
function expandReduced(dy: tf.Tensor, xShape: number[], axis: unknown): tf.Tensor {
  const axes = tf.util.parseAxisParam(axis as number | number[], xShape);
  const kept = xShape.map((d, i) => (axes.includes(i) ? 1 : d));
  return tf.reshape(dy, kept);
}

function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Attrs): tf.Tensor {
  return tf.engine().runKernel(
    name,
    inputs as unknown as tf.NamedTensorMap,
    attrs as unknown as tf.NamedAttrMap,
  ) as tf.Tensor;
}

function one(dy: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(dy) ? dy[0] : dy;
}

/** Kernel name, tensors to save ([inputs..., outputs...]), and the gradient per input. */
interface Gradient {
  kernelName: string;
  inputsToSave?: string[];
  saveAllInputs?: boolean;
  outputsToSave?: boolean[];
  grad: (dy: tf.Tensor, saved: tf.Tensor[], attrs: Attrs) => Record<string, () => tf.Tensor>;
}

export const GRADIENTS: Gradient[] = [
  {
    kernelName: "Add",
    inputsToSave: ["a", "b"],
    grad: (dy, [a, b]) => ({
      a: () => unbroadcast(dy, a.shape),
      b: () => unbroadcast(dy, b.shape),
    }),
  },
  {
    kernelName: "Sub",
    inputsToSave: ["a", "b"],
    grad: (dy, [a, b]) => ({
      a: () => unbroadcast(dy, a.shape),
      b: () => unbroadcast(tf.neg(dy), b.shape),
    }),
  },
  {
    kernelName: "Multiply",
    inputsToSave: ["a", "b"],
    grad: (dy, [a, b]) => ({
      a: () => unbroadcast(tf.mul(dy, b), a.shape),
      b: () => unbroadcast(tf.mul(dy, a), b.shape),
    }),
  },
  {
    kernelName: "AddN",
    saveAllInputs: true,
    grad: (dy, saved) => Object.fromEntries(saved.map((_, i) => [i, () => tf.clone(dy)])),
  },
  { kernelName: "Neg", grad: (dy) => ({ x: () => tf.neg(dy) }) },
  {
    kernelName: "Square",
    inputsToSave: ["x"],
    grad: (dy, [x]) => ({ x: () => tf.mul(dy, tf.mul(x, 2)) }),
  },
  {
    kernelName: "Exp",
    outputsToSave: [true],
    grad: (dy, [y]) => ({ x: () => tf.mul(dy, y) }),
  },
  {
    kernelName: "Log",
    inputsToSave: ["x"],
    grad: (dy, [x]) => ({ x: () => tf.div(dy, x) }),
  },
  {
    kernelName: "Relu",
    inputsToSave: ["x"],
    grad: (dy, [x]) => ({ x: () => tf.mul(dy, tf.step(x)) }), // step: 1 where x > 0, else 0
  },
  { kernelName: "Cast", grad: (dy) => ({ x: () => tf.clone(dy) }) },
  {
    kernelName: "Reshape",
    inputsToSave: ["x"],
    grad: (dy, [x]) => ({ x: () => tf.reshape(dy, x.shape) }),
  },
  {
    kernelName: "Sum",
    inputsToSave: ["x"],
    grad: (dy, [x], attrs) => ({
      x: () => tf.broadcastTo(expandReduced(dy, x.shape, attrs.axis), x.shape),
    }),
  },
  {
    kernelName: "Mean",
    inputsToSave: ["x"],
    grad: (dy, [x], attrs) => ({
      x: () => {
        const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
        const count = axes.reduce((n, a) => n * x.shape[a], 1);
        return tf.broadcastTo(expandReduced(tf.div(dy, count), x.shape, attrs.axis), x.shape);
      },
    }),
  },
  {
    // The maximum's gradient goes to every element equal to it (ties share it, as in tfjs).
    kernelName: "Max",
    inputsToSave: ["x"],
    outputsToSave: [true],
    grad: (dy, [x, y], attrs) => ({
      x: () => {
        const at = tf.cast(
          tf.equal(x, expandReduced(y, x.shape, attrs.reductionIndices)),
          "float32",
        );
        return tf.mul(expandReduced(dy, x.shape, attrs.reductionIndices), at);
      },
    }),
  },
  {
    // C = op(A) op(B) with op = transpose or not: dA and dB per the four cases, summed over
    // broadcast batch dimensions.
    kernelName: "BatchMatMul",
    inputsToSave: ["a", "b"],
    grad: (dy, [a, b], attrs) => {
      const tA = attrs.transposeA as boolean, tB = attrs.transposeB as boolean;
      const mm = (p: tf.Tensor, q: tf.Tensor, tp: boolean, tq: boolean) => tf.matMul(p, q, tp, tq);
      return {
        a: () =>
          unbroadcast(
            !tA ? mm(dy, b, false, !tB) : tB ? mm(b, dy, true, true) : mm(b, dy, false, true),
            a.shape,
          ),
        b: () =>
          unbroadcast(
            !tB ? mm(a, dy, !tA, false) : tA ? mm(dy, a, true, true) : mm(dy, a, true, false),
            b.shape,
          ),
      };
    },
  },
  {
    kernelName: "Conv2D",
    inputsToSave: ["x", "filter"],
    grad: (dy, [x, filter], attrs) => {
      const dilations = attrs.dilations as number | [number, number] | undefined;
      if ([dilations ?? 1].flat().some((d) => d !== 1)) {
        throw new Error(`Conv2D gradient: dilations must be 1, got ${dilations}`);
      }
      const common = {
        strides: attrs.strides,
        pad: attrs.pad,
        dataFormat: attrs.dataFormat,
        dimRoundingMode: attrs.dimRoundingMode,
      };
      return {
        x: () =>
          runKernel("Conv2DBackpropInput", { dy, filter }, { ...common, inputShape: x.shape }),
        filter: () =>
          runKernel("Conv2DBackpropFilter", { x, dy }, { ...common, filterShape: filter.shape }),
      };
    },
  },
  {
    kernelName: "MaxPool",
    inputsToSave: ["x"],
    outputsToSave: [true],
    grad: (dy, [x, y], attrs) => ({
      x: () =>
        runKernel("MaxPoolGrad", { dy, input: x, output: y }, {
          filterSize: attrs.filterSize,
          strides: attrs.strides,
          pad: attrs.pad,
          dimRoundingMode: attrs.dimRoundingMode,
        }),
    }),
  },
  {
    // y = (x - mean) * r * scale + offset, r = 1 / sqrt(variance + eps); mean and variance are
    // inputs in their own right (moments' dependence on x is on the tape separately). As in
    // tfjs, scale must be given (the engine cannot save an absent input) and the offset's
    // gradient takes the mean's shape.
    kernelName: "FusedBatchNorm",
    inputsToSave: ["x", "mean", "variance", "scale"],
    grad: (dy, [x, mean, variance, scale], attrs) => {
      const r = tf.rsqrt(tf.add(variance, attrs.varianceEpsilon as number));
      const rs = tf.mul(r, scale);
      return {
        x: () => tf.mul(dy, rs),
        mean: () => unbroadcast(tf.neg(tf.mul(dy, rs)), mean.shape),
        variance: () => {
          const drs = tf.mul(tf.mul(tf.pow(r, 3), -0.5), scale); // d(r * scale) / dvariance
          return unbroadcast(tf.mul(tf.mul(dy, tf.sub(x, mean)), drs), variance.shape);
        },
        scale: () => unbroadcast(tf.mul(dy, tf.mul(tf.sub(x, mean), r)), scale.shape),
        offset: () => unbroadcast(dy, mean.shape),
      };
    },
  },
];

for (const g of GRADIENTS) {
  tf.registerGradient({
    kernelName: g.kernelName,
    inputsToSave: g.inputsToSave,
    saveAllInputs: g.saveAllInputs,
    outputsToSave: g.outputsToSave,
    gradFunc: (dy, saved, attrs) => g.grad(one(dy), saved, attrs as unknown as Attrs),
  });
}
