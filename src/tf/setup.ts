// One place that prepares TensorFlow.js: backends, gradients, our custom ops, the WebGPU adapter.
//
// Every entry point (CLI commands, tests, benchmarks) calls `initTf` before touching tensors.

import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-webgpu";
import "./gradients.ts";
import { registerOps } from "../ops/registry.ts";
import { UsageError } from "../errors.ts";
import { installDeviceGuard } from "./device_guard.ts";
import { gradientsReadFirstOutputOnly } from "./side_output_grads.ts";
import { installDispatchCache } from "./dispatch_cache.ts";
import { installUniformInputs } from "./uniform_inputs.ts";
import { CONV_BN_RELU_TRAIN } from "../ops/conv_bn_relu/conv_bn_relu.ts";
import { CONV_BIAS_RELU_POOL2 } from "../ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
import { SOFTMAX_XENT } from "../ops/softmax_xent/softmax_xent.ts";
import { ensureLoopCapProbed } from "../ops/backend/loop_cap.ts";
import { ensureLoadCostProbed, STORAGE_COSTLY } from "../ops/backend/load_cost.ts";
import { loadedMesaVersion } from "./driver_info.ts";

export type BackendName = "webgpu" | "cpu";
/** `any`: take what the system offers; `hardware`: refuse software/fallback adapters. */
export type AdapterPolicy = "any" | "hardware";

export interface AdapterReport {
  backend: BackendName;
  /** Human-readable adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  vendor: string;
  architecture: string;
  /** True for a software rasteriser (llvmpipe/lavapipe, SwiftShader, WARP) or a fallback adapter. */
  isSoftware: boolean;
  features: string[];
  /** The Mesa release of the Vulkan driver ("Mesa 25.0.7-2~bpo12+1"); "" when not Mesa or unknown. */
  driver: string;
  /**
   * Iterations after which the adapter stops a loop (lavapipe 22: 65,535), from the probe kernel
   * (src/ops/backend/loop_cap.ts); null where loops run to the end or before the probe (probeAdapter).
   */
  loopCap: number | null;
  /**
   * Software adapters: a storage load's time over a uniform-buffer load's (src/ops/backend/
   * load_cost.ts's probe; ~4 on Mesa 22.3 without AVX-512, ~1 elsewhere); absent before the probe
   * and on GPUs.
   */
  storageLoadCost?: number;
}

/** tfjs-webgpu's MatMulProgramType.MatMulPackedProgram. */
const MATMUL_PACKED = 3;

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|warp|software/i;

/** Describes the adapter the webgpu backend will get (it asks for high-performance, as we do). */
export async function probeAdapter(): Promise<AdapterReport | null> {
  if (!("gpu" in navigator) || !navigator.gpu) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const description = info.description || `${info.vendor} ${info.device}`.trim();
  return {
    backend: "webgpu",
    description,
    vendor: info.vendor,
    architecture: info.architecture,
    isSoftware: !!info.isFallbackAdapter || SOFTWARE_ADAPTER.test(description),
    features: [...adapter.features].sort(),
    // The adapter request loaded the Vulkan driver, so it can be read now.
    driver: loadedMesaVersion(description),
    loopCap: null,
  };
}

let current: AdapterReport | null = null;

/**
 * Selects and readies a backend. Throws UsageError with a suggested fix when no (suitable)
 * WebGPU adapter exists.
 */
export async function initTf(
  backend: BackendName = "webgpu",
  policy: AdapterPolicy = "any",
): Promise<AdapterReport> {
  silenceCpuBanner();
  registerOps();
  gradientsReadFirstOutputOnly([CONV_BN_RELU_TRAIN, CONV_BIAS_RELU_POOL2, SOFTMAX_XENT]);
  if (backend === "cpu") {
    await setBackend("cpu");
    current = {
      backend: "cpu",
      description: "tfjs CPU backend (plain JavaScript)",
      vendor: "",
      architecture: "",
      isSoftware: true,
      features: [],
      driver: "",
      loopCap: null,
    };
    return current;
  }
  const report = await probeAdapter();
  if (!report) {
    throw new UsageError(
      "no WebGPU adapter found (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers, " +
        "or run with --backend cpu)",
    );
  }
  if (policy === "hardware" && report.isSoftware) {
    throw new UsageError(
      `--adapter hardware: only a software adapter is available ("${report.description}"); ` +
        "check the GPU's Vulkan driver (vulkaninfo --summary) or use --adapter any",
    );
  }
  await setBackend("webgpu");
  installDispatchCache(); // before the first pipeline: it memoizes their bind group layouts
  installUniformInputs(tf.backend()); // after it: its bind group cache sees the uniform copies
  // Before any kernel runs: the ops choose their loop-cap workarounds from this answer.
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const loops = await ensureLoopCapProbed(device);
  report.loopCap = loops.capped ? loops.single : null;
  // On a software adapter: whether the pools and batch-norm passes read through textures.
  if (report.isSoftware) {
    const loads = await ensureLoadCostProbed(device);
    report.storageLoadCost = loads.storageMs / loads.uniformMs;
  }
  // Reproducible training: for some shapes (enhanced's dense1, K = 3136) tfjs-webgpu picks its
  // split-K matMul, which sums with float atomics in a run-dependent order, so two identical runs
  // (and a resumed one) differed in the last bits (measured on llvmpipe). Its packed program has
  // a fixed summation order.
  tf.env().set("WEBGPU_MATMUL_PROGRAM_TYPE", MATMUL_PACKED);
  current = report;
  return current;
}

/**
 * The CPU backend prints an "install tfjs-node" banner on its first tensor under Deno (it
 * detects Node). We use the CPU backend deliberately, as a reference; mark it as used. (Setting
 * IS_TEST instead would also switch on tfjs's per-kernel leak check in production runs.)
 */
function silenceCpuBanner() {
  const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
  if (cpu && "firstUse" in cpu) cpu.firstUse = false;
}

async function setBackend(name: BackendName) {
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new UsageError(`could not initialise the ${name} backend`);
  }
}

/** The adapter chosen by the last `initTf`, or null before it. */
export function currentAdapter(): AdapterReport | null {
  return current;
}

/**
 * One line for start-up logs: "webgpu on llvmpipe (LLVM 15.0.6, 256 bits), Mesa 22.3.6 [software
 * adapter, loops stop after 65,535 iterations]".
 */
export function describeAdapter(r: AdapterReport): string {
  const notes = [
    ...(r.isSoftware ? ["software adapter"] : []),
    ...(r.loopCap !== null
      ? [`loops stop after ${r.loopCap.toLocaleString("en-US")} iterations`]
      : []),
    ...(r.storageLoadCost !== undefined && r.storageLoadCost >= STORAGE_COSTLY
      ? [`storage loads ${r.storageLoadCost.toFixed(1)}x uniform loads`]
      : []),
  ];
  return `${r.backend} on ${r.description}${r.driver ? `, ${r.driver}` : ""}` +
    (notes.length ? ` [${notes.join(", ")}]` : "");
}

/**
 * What every command does first: select the backend/adapter (`initTf`), print the adapter on one
 * line ("train: webgpu on llvmpipe (...), Mesa 25.0.7 [software adapter]") and, on webgpu, start the device
 * guard so that a lost device or GPU error is reported clearly (see device_guard.ts).
 */
export async function startTf(
  command: string,
  backend: BackendName = "webgpu",
  policy: AdapterPolicy = "any",
  log: (line: string) => void = console.log,
): Promise<AdapterReport> {
  const report = await initTf(backend, policy);
  log(`${command}: ${describeAdapter(report)}`);
  if (backend === "webgpu") {
    installDeviceGuard((err) => console.error(`${command}: ${err.message}`));
  }
  return report;
}
