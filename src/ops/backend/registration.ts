// What an op hands to the registration table (src/ops/registry.ts): its kernels per backend and
// its gradients, as values. Nothing registers itself on import; `registerOps()` does it once.

import type { GradConfig, KernelConfig } from "@tensorflow/tfjs-core";

/** One op's tfjs kernels (webgpu, and the cpu reference under the same names) and gradients. */
export interface OpKernels {
  webgpu: KernelConfig[];
  cpu: KernelConfig[];
  gradients: GradConfig[];
}

/** A stock tfjs kernel we replace, with the reason (shown by the registry test and README). */
export interface StockOverride {
  kernelName: string;
  backendName: "webgpu" | "cpu";
  why: string;
  /** The replacement, given the stock kernel it may call. */
  replace(stock: KernelConfig): KernelConfig;
}
