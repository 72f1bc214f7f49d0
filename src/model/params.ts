// Named model variables: each has a stable logical name ("block1/conv1/kernel") used by
// checkpoints, and a unique tfjs name (tfjs refuses two live variables with one name, and a
// process may hold several models: tune trials, the estimate probe, tests).

import * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "../random.ts";

export interface NamedVariable {
  /** Stable name inside the model, used as the checkpoint key. */
  name: string;
  variable: tf.Variable;
  trainable: boolean;
  /** Kernels get L2 weight decay; biases and batch-norm parameters do not. */
  decay: boolean;
}

let instanceCounter = 0;

export class ParamStore {
  readonly entries: NamedVariable[] = [];
  readonly #prefix = `model${++instanceCounter}`;

  constructor(readonly rng: Rng) {}

  add(name: string, values: tf.Tensor, opts: { trainable?: boolean; decay?: boolean } = {}) {
    if (this.entries.some((e) => e.name === name)) throw new Error(`duplicate variable ${name}`);
    const trainable = opts.trainable ?? true;
    const variable = tf.variable(values, trainable, `${this.#prefix}/${name}`);
    values.dispose();
    this.entries.push({ name, variable, trainable, decay: opts.decay ?? false });
    return variable;
  }

  /** He-normal (std sqrt(2 / fanIn)): keeps ReLU activations' variance steady through depth. */
  heNormal(name: string, shape: number[], fanIn: number): tf.Variable {
    const std = Math.sqrt(2 / fanIn);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = this.rng.normal() * std;
    return this.add(name, tf.tensor(data, shape), { decay: true });
  }

  /** Glorot-uniform, for the final (non-ReLU) classifier layer. */
  glorotUniform(name: string, shape: [number, number]): tf.Variable {
    const limit = Math.sqrt(6 / (shape[0] + shape[1]));
    const data = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < data.length; i++) data[i] = (this.rng.next() * 2 - 1) * limit;
    return this.add(name, tf.tensor(data, shape), { decay: true });
  }

  constant(name: string, shape: number[], value: number, trainable = true): tf.Variable {
    return this.add(name, tf.fill(shape, value), { trainable });
  }

  get trainable(): tf.Variable[] {
    return this.entries.filter((e) => e.trainable).map((e) => e.variable);
  }

  get decayed(): tf.Variable[] {
    return this.entries.filter((e) => e.decay).map((e) => e.variable);
  }

  paramCount(trainableOnly = false): number {
    return this.entries.filter((e) => !trainableOnly || e.trainable)
      .reduce((sum, e) => sum + e.variable.size, 0);
  }

  dispose() {
    for (const e of this.entries) e.variable.dispose();
    this.entries.length = 0;
  }
}
