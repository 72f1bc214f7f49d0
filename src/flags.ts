// The one switch between our tiled kernels and the naive oracle kernels (one output element per
// invocation; kept to check the generator against and as a fallback): the tfjs environment flag
// FMNIST_NAIVE_KERNELS, default from the environment variable of the same name (`=1` turns it
// on). Tests and probes flip it with `tf.env().set("FMNIST_NAIVE_KERNELS", true)`.

import { env } from "@tensorflow/tfjs-core";

export const NAIVE_KERNELS_FLAG = "FMNIST_NAIVE_KERNELS";

env().registerFlag(NAIVE_KERNELS_FLAG, () => {
  try {
    return Deno.env.get(NAIVE_KERNELS_FLAG) === "1";
  } catch {
    return false; // no --allow-env: default kernels
  }
});

/** True when the naive oracle kernels run instead of the tiled ones. */
export function useNaiveKernels(): boolean {
  return env().getBool(NAIVE_KERNELS_FLAG);
}
