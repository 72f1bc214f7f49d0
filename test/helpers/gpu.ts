// Shared set-up for tests that run tfjs on the GPU.

import * as tf from "@tensorflow/tfjs-core";
import { initTf } from "../../src/tf/setup.ts";

/**
 * Test options: tfjs's backends keep GPU buffers, timers and pending ops alive between tests by
 * design, so Deno's op and resource sanitizers would report them as leaks. (Tests that care
 * about leaks count tensors and GPU bytes themselves.)
 */
export const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };

/** The webgpu backend with even tiny tensors on the GPU (tfjs would run those on the CPU). */
export async function initWebGpu(): Promise<void> {
  await initTf("webgpu");
  tf.env().set("WEBGPU_CPU_FORWARD", false);
}
