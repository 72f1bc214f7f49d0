// The training loop's optimizer: FusedAdam (default) runs tf.train.adam's update for every
// trainable variable as one AdamStep kernel (src/ops/adam_step/adam_step.ts: 20 dispatches per enhanced
// step instead of ~240), with the L2 penalty's gradient (l2 * 2w on conv and dense kernels)
// added inside the kernel instead of through the loss. `--optimizer tfjs` keeps tf.train.adam
// with the penalty in the loss, for comparison.
//
// Checkpoints see the same state as tf.train.adam's: getWeights() returns [iter, m..., v...]
// named "<variable>/m" and "<variable>/v", and the beta powers are read and set through
// adamBetaPowers / setAdamBetaPowers, so either optimizer resumes the other's checkpoints.

import * as tf from "@tensorflow/tfjs-core";
import {
  adamStep,
  type AdamStepAttrs,
  adamStepScalars,
  packedOffsets,
} from "../ops/adam_step/adam_step.ts";
import { stepInput } from "../tf/step_inputs.ts";
import type { Model } from "../model/model.ts";

export type OptimizerKind = "fused" | "tfjs";
export const OPTIMIZER_KINDS: readonly OptimizerKind[] = ["fused", "tfjs"];

export interface FusedAdamOptions {
  beta1?: number;
  beta2?: number;
  /** Default: the backend's epsilon (1e-7 for float32), as tf.train.adam. */
  epsilon?: number;
  /** L2 coefficient applied to the variables named in `decayed` (tfjs variable names). */
  l2?: number;
  decayed?: Iterable<string>;
}

interface Block {
  name: string;
  shape: number[];
  size: number;
  offset: number;
}

type NamedTensor = { name: string; tensor: tf.Tensor };

export class FusedAdam extends tf.Optimizer {
  static get className() {
    return "FusedAdam";
  }
  /** tf.Optimizer's instanceof is duck-typed (any optimizer passes): check the brand instead. */
  static override [Symbol.hasInstance](x: unknown): boolean {
    return typeof x === "object" && x !== null && (x as { fusedAdam?: unknown }).fusedAdam === true;
  }
  readonly fusedAdam = true;
  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly l2: number;
  readonly decayed: ReadonlySet<string>;
  /** beta^t for the next step t, as float32 (tf.train.adam's accBeta variables). */
  accBeta1: number;
  accBeta2: number;
  /** Packed moments [m of every variable, v of every variable]; null before the first step. */
  private state: tf.Variable<tf.Rank.R1> | null = null;
  private blocks: Block[] = [];

  constructor(learningRate: number, opts: FusedAdamOptions = {}) {
    super();
    this.learningRate = learningRate;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.epsilon = opts.epsilon ?? tf.backend().epsilon();
    this.l2 = opts.l2 ?? 0;
    this.decayed = new Set(opts.decayed ?? []);
    this.accBeta1 = Math.fround(this.beta1);
    this.accBeta2 = Math.fround(this.beta2);
  }

  /** The optimizer applies `model`'s L2 penalty itself (so the loss must not include it). */
  appliesL2Of(model: Model): boolean {
    const wanted = model.variables.filter((v) => v.decay).map((v) => v.variable.name);
    return model.config.l2 === this.l2 && wanted.every((n) => this.decayed.has(n));
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const named: [string, tf.Tensor][] = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor])
      : Object.entries(variableGradients);
    const registered = tf.engine().registeredVariables;
    const missing = named.find(([, g]) => g == null);
    if (missing) throw new Error(`FusedAdam: no gradient for ${missing[0]} (unused variable?)`);
    if (this.state === null) this.initState(named.map(([n]) => registered[n]));
    if (
      named.length !== this.blocks.length || named.some(([n], i) => n !== this.blocks[i].name)
    ) {
      throw new Error(
        `FusedAdam: gradients for [${named.map(([n]) => n)}], state for ` +
          `[${this.blocks.map((b) => b.name)}] (same variables in the same order each step)`,
      );
    }
    const weights = named.map(([n]) => registered[n]);
    const attrs = this.stepAttrs(named.map(([n]) => this.l2 !== 0 && this.decayed.has(n)));
    // A captured step (src/tf/step_capture.ts) replays the kernels without this method, so the
    // per-step scalars and the host state they advance come from one function it can call.
    const scalars = stepInput(this.takeStepScalars(), { produce: () => this.takeStepScalars() });
    const next = adamStep(this.state!, named.map(([, g]) => g), weights, attrs, scalars);
    scalars.dispose();
    weights.forEach((w, i) => w.assign(next[i]));
    tf.dispose(next);
  }

  private stepAttrs(decay: boolean[]): AdamStepAttrs {
    return {
      decay,
      l2: this.l2,
      lr: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      accBeta1: this.accBeta1,
      accBeta2: this.accBeta2,
    };
  }

  /** This step's [1 - beta1^t, 1 - beta2^t, -lr]; advances the beta powers and the step count. */
  private takeStepScalars(): Float32Array {
    const scalars = adamStepScalars(this.stepAttrs([]));
    this.accBeta1 = Math.fround(this.accBeta1 * Math.fround(this.beta1));
    this.accBeta2 = Math.fround(this.accBeta2 * Math.fround(this.beta2));
    this.incrementIterations();
    return scalars;
  }

  private initState(vars: tf.Variable[]) {
    const sizes = vars.map((v) => v.size);
    const { offsets, total } = packedOffsets(sizes);
    this.blocks = vars.map((v, i) => ({
      name: v.name,
      shape: [...v.shape],
      size: sizes[i],
      offset: offsets[i],
    }));
    // In a tidy: tf.variable shares the zeros' buffer, the zeros tensor itself must go.
    this.state = tf.tidy(() => tf.variable(tf.zeros([2 * total]), false)) as tf.Variable<
      tf.Rank.R1
    >;
  }

  override dispose(): void {
    this.state?.dispose();
    this.state = null;
  }

  /** [iter, m of each variable, v of each variable]: fresh tensors, the caller disposes them. */
  override async getWeights(): Promise<NamedTensor[]> {
    const iter = await this.saveIterations();
    if (!this.state) return [iter];
    const state = this.state;
    const total = state.size / 2;
    const moments = tf.tidy(() =>
      ["m", "v"].flatMap((kind, k) =>
        this.blocks.map((b) => ({
          name: `${b.name}/${kind}`,
          tensor: tf.reshape(tf.slice(state, [k * total + b.offset], [b.size]), b.shape),
        }))
      )
    );
    return [iter, ...moments];
  }

  /** tf.train.adam's layout: [iter?, m..., v...] named "<variable>/m", "<variable>/v". */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const values = await this.extractIterations(weightValues);
    const k = values.length / 2;
    const ms = values.slice(0, k), vs = values.slice(k);
    const names = ms.map((m, i) => {
      const name = m.name.replace(/\/m$/, "");
      if (m.name !== `${name}/m` || vs[i].name !== `${name}/v`) {
        throw new Error(
          `FusedAdam.setWeights: expected ${name}/m and ${name}/v, got ${vs[i].name}`,
        );
      }
      return name;
    });
    const registered = tf.engine().registeredVariables;
    const vars = names.map((n) => {
      const v = registered[n];
      if (!v) throw new Error(`FusedAdam.setWeights: no variable ${n}`);
      return v;
    });
    this.state?.dispose();
    this.state = null;
    this.initState(vars);
    const flat = tf.tidy(() => tf.concat([...ms, ...vs].map((t) => tf.reshape(t.tensor, [-1]))));
    this.state!.assign(flat as tf.Tensor1D);
    flat.dispose();
    // tf.train.adam's setWeights: beta^(iterations + 1); a checkpoint then sets the exact values.
    this.accBeta1 = Math.fround(Math.pow(this.beta1, this.iterations + 1));
    this.accBeta2 = Math.fround(Math.pow(this.beta2, this.iterations + 1));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      l2: this.l2,
    };
  }
}

/** Adam's running beta powers (beta^t of the next step), for checkpoints. */
export async function adamBetaPowers(opt: tf.Optimizer): Promise<[number, number]> {
  if (opt instanceof FusedAdam) return [opt.accBeta1, opt.accBeta2];
  const adam = opt as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  return [(await adam.accBeta1.data())[0], (await adam.accBeta2.data())[0]];
}

export function setAdamBetaPowers(opt: tf.Optimizer, accBeta1: number, accBeta2: number): void {
  if (opt instanceof FusedAdam) {
    opt.accBeta1 = Math.fround(accBeta1);
    opt.accBeta2 = Math.fround(accBeta2);
    return;
  }
  const adam = opt as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  tf.tidy(() => {
    adam.accBeta1.assign(tf.scalar(accBeta1));
    adam.accBeta2.assign(tf.scalar(accBeta2));
  });
}

export function isAdam(opt: tf.Optimizer): boolean {
  return opt instanceof FusedAdam || opt.getClassName() === "Adam";
}

/** Adam for `model`: fused (L2 inside the kernel) or tf.train.adam (L2 through the loss). */
export function createAdam(model: Model, lr: number, kind: OptimizerKind = "fused"): tf.Optimizer {
  if (kind === "tfjs") return tf.train.adam(lr);
  return new FusedAdam(lr, {
    l2: model.config.l2,
    decayed: model.variables.filter((v) => v.decay).map((v) => v.variable.name),
  });
}
