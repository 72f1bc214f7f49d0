// Gradients of our multi-output kernels without tfjs's zero tensors for their side outputs.
//
// tfjs's tape gives a kernel's gradient function one dy per output and, for an output that got
// no gradient, builds a zero tensor of its size on the CPU (makeZerosTypedArray) first. Our
// fused kernels expose what their backward pass saves as outputs (the conv output z, BN
// statistics, the correct count), and nothing downstream differentiates those: an `enhanced`
// step at batch 128 allocated 38.5 MB of zeros on the main thread per step (4 ConvBnReluTrain
// z outputs, 6.4-12.8 MB each; `baseline`: 15 MB from ConvBiasReluPool2), which their gradients
// never read (they take dys[0] only). For the kernels listed here the tape node calls the
// registered gradient with those dys left null; when the first output got no gradient either
// (nothing in our models), tfjs's own path runs. The arithmetic is unchanged.

import * as tf from "@tensorflow/tfjs-core";
import type { NamedAttrMap } from "@tensorflow/tfjs-core";

type NamedGradientMap = ReturnType<tf.GradConfig["gradFunc"]>;

type Dys = (tf.Tensor | null)[];

interface TapeNode {
  kernelName: string;
  gradient?: (dys: Dys) => NamedGradientMap;
}

interface TapingEngine {
  addTapeNode(
    kernelName: string,
    inputs: unknown,
    outputs: tf.Tensor[],
    gradientsFunc: unknown,
    saved: tf.Tensor[],
    attrs: NamedAttrMap,
  ): void;
  state: { activeTape: TapeNode[] | null };
}

const installed = new WeakSet<object>();
const firstOutputOnly = new Set<string>();

/**
 * Marks `kernelNames` as kernels whose registered gradient reads only the first output's dy,
 * and installs the tape hook on tfjs's engine (once).
 */
export function gradientsReadFirstOutputOnly(kernelNames: readonly string[]): void {
  for (const k of kernelNames) firstOutputOnly.add(k);
  const engine = tf.engine() as unknown as TapingEngine;
  if (installed.has(engine)) return;
  installed.add(engine);
  const addTapeNode = engine.addTapeNode.bind(engine);
  engine.addTapeNode = (kernelName, inputs, outputs, gradientsFunc, saved, attrs) => {
    addTapeNode(kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    if (!firstOutputOnly.has(kernelName) || outputs.length < 2) return;
    const tape = engine.state.activeTape;
    const node = tape?.[tape.length - 1];
    const config = tf.getGradient(kernelName);
    if (!node?.gradient || node.kernelName !== kernelName || !config) return;
    const withZeros = node.gradient;
    node.gradient = (dys) =>
      dys[0] == null ? withZeros(dys) : config.gradFunc(dys as tf.Tensor[], saved, attrs);
  };
}

/** Undoes `gradientsReadFirstOutputOnly` for `kernelNames`: tfjs's zeros again (tests compare). */
export function gradientsReadAllOutputs(kernelNames: readonly string[]): void {
  for (const k of kernelNames) firstOutputOnly.delete(k);
}
