// Probe: the parts of a training step this project replaced with small kernels, timed alone
// in one process, tfjs composite vs ours: the Adam update of every enhanced variable
// (tf.train.adam vs FusedAdam, L2 included), and the loss + accuracy counter with the loss's
// gradient at a batch (crossEntropy/countCorrect vs SoftmaxXent). Prints ms per call (median,
// wall time to a read-back) and dispatches per call.
//   deno run -A bench/probes/step_parts_probe.ts [--batch 128] [--repeats 15]

import * as tf from "@tensorflow/tfjs-core";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { createModel } from "../../src/model/model.ts";
import { createAdam } from "../../src/train/optimizer.ts";
import { countCorrect, crossEntropy } from "../../src/train/step.ts";
import { softmaxCrossEntropyWithCount } from "../../src/ops/softmax_xent/softmax_xent.ts";
import { countDispatches } from "../dispatches.ts";
import { medianHostMs, roundRobin } from "../timing.ts";
import { arg } from "./probe_args.ts";

/** Prints and returns the median wall ms (to a read-back) of `work` over `repeats` calls. */
async function time(label: string, work: () => tf.Tensor[], repeats: number) {
  let dispatches = 0;
  const counted = () => {
    const { result, count } = countDispatches(work);
    dispatches = count?.total ?? 0;
    return result;
  };
  const [samples] = await roundRobin([counted], { warmup: 1, repeats, gpu: false });
  const median = medianHostMs(samples);
  console.log(
    `${label.padEnd(36)} ${median.toFixed(2).padStart(8)} ms ${
      String(dispatches).padStart(5)
    } dispatches`,
  );
  return median;
}

const adapter = await initTf("webgpu");
const batch = Number(arg("batch", "128")), repeats = Number(arg("repeats", "15"));
console.log(`${describeAdapter(adapter)}; enhanced, batch ${batch}, median of ${repeats}`);

// Adam over the enhanced model's trainable variables with fixed random gradients.
const results: Record<string, number> = {};
for (const kind of ["tfjs", "fused"] as const) {
  const model = createModel("enhanced", { l2: 1e-4 });
  const opt = createAdam(model, 1e-3, kind);
  const grads = model.trainableVariables.map((v, i) => ({
    name: v.name,
    tensor: tf.randomNormal(v.shape, 0, 0.01, "float32", i + 1),
  }));
  const penalty = kind === "tfjs";
  results[kind] = await time(
    `Adam update (${kind === "tfjs" ? "tf.train.adam" : "FusedAdam"})`,
    () => {
      if (penalty) {
        // tf.train.adam gets the L2 gradient through the loss: l2 * 2w added to each kernel's.
        const withL2 = tf.tidy(() =>
          grads.map((g, i) => {
            const v = model.variables.find((e) => e.variable === model.trainableVariables[i])!;
            return {
              name: g.name,
              tensor: v.decay
                ? tf.add(g.tensor, tf.mul(tf.mul(v.variable, 2), 1e-4))
                : tf.clone(g.tensor),
            };
          })
        );
        opt.applyGradients(withL2);
        tf.dispose(withL2.map((g) => g.tensor));
      } else {
        opt.applyGradients(grads);
      }
      return [tf.clone(model.trainableVariables[0])];
    },
    repeats,
  );
  tf.dispose(grads.map((g) => g.tensor));
  opt.dispose();
  model.dispose();
}
console.log(`  ratio tf.train.adam / FusedAdam: ${(results.tfjs / results.fused).toFixed(2)}x`);

const logits = tf.randomNormal([batch, 10], 0, 2, "float32", 7) as tf.Tensor2D;
const labels = tf.tidy(() =>
  tf.cast(tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 8) as tf.Tensor1D, 10), "float32")
) as tf.Tensor2D;
const stock = await time("loss + count + dlogits (tfjs ops)", () => {
  const g = tf.grad((l: tf.Tensor) => crossEntropy(labels, l as tf.Tensor2D))(logits);
  return [g, crossEntropy(labels, logits), countCorrect(logits, labels)];
}, repeats);
const ours = await time("loss + count + dlogits (SoftmaxXent)", () => {
  const g = tf.grad((l: tf.Tensor) => softmaxCrossEntropyWithCount(labels, l as tf.Tensor2D).loss)(
    logits,
  );
  const r = softmaxCrossEntropyWithCount(labels, logits);
  return [g, r.loss, r.correct];
}, repeats);
console.log(
  `  ratio: ${(stock / ours).toFixed(2)}x (ours computes the forward twice here: grad + value)`,
);
tf.dispose([logits, labels]);
