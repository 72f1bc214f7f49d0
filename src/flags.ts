// Every FMNIST_* switch of the program, documented once and read only through this module. Each
// is an environment variable, read when it is used (a test may set one for a call with
// `withFlags`); without --allow-env every switch reads as unset.

import { UsageError } from "./errors.ts";

/** The switches and what each does (README's table is made from the same words). */
export const FLAG_DOCS = {
  FMNIST_AUTOTUNE: "on|off|refresh (default on): tile and dense-kernel autotuning; off = " +
    "built-in defaults, refresh = time again. The --autotune flag of train/bench wins.",
  FMNIST_AUTOTUNE_CACHE: "file path of the autotune cache (default " +
    "$XDG_CACHE_HOME/fmnist-webgpu/autotune.json, else ~/.cache/fmnist-webgpu/autotune.json)",
  FMNIST_TILE_CONFIG: "<config id>[,<config id>]: force these conv tile configs (one per view) " +
    "over the tuner's choice",
  FMNIST_PRINT_SHADER: "<config id>|<shader key part>|all: print the generated conv WGSL to stderr",
  FMNIST_NAIVE_KERNELS: "1: run the naive one-output-per-invocation conv/BN kernels (the oracle " +
    "the tiled kernels are checked against) instead of the tiled ones",
  FMNIST_DENSE: "auto|gemm|matmul (default auto): dense layers on our GEMM, tfjs's matMul, or " +
    "the tuner's/measured choice",
  FMNIST_DEBUG: "1: print the stack with a command's error message",
  FMNIST_SOAK: "1 (tests): ten times the property-test cases",
  FMNIST_CHROMIUM_LOG: "1 (tests): print headless Chromium's log in the browser tests",
} as const;

export type FlagName = keyof typeof FLAG_DOCS;

const overrides = new Map<FlagName, string | undefined>();

/** The raw value of `name` (an override from withFlags first), or undefined when unset. */
export function readFlag(name: FlagName): string | undefined {
  if (overrides.has(name)) return overrides.get(name);
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

/**
 * Runs `f` with the given switches set (undefined = unset) for this process's reads; restores
 * them when `f` returns or its promise settles.
 */
export function withFlags<T>(values: Partial<Record<FlagName, string | undefined>>, f: () => T): T {
  const saved = new Map(overrides);
  for (const [k, v] of Object.entries(values)) overrides.set(k as FlagName, v);
  const restore = () => {
    overrides.clear();
    for (const [k, v] of saved) overrides.set(k, v);
  };
  let result: T;
  try {
    result = f();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}

function oneOf<T extends string>(name: FlagName, choices: readonly T[], fallback: T): T {
  const raw = readFlag(name);
  if (raw === undefined || raw.trim() === "") return fallback;
  const v = raw.trim().toLowerCase();
  if ((choices as readonly string[]).includes(v)) return v as T;
  throw new UsageError(`${name} must be one of ${choices.join("|")}, got "${raw}"`);
}

/** `on`: use the cache, tune what it lacks; `off`: built-in defaults; `refresh`: tune again. */
export type AutotuneSetting = "on" | "off" | "refresh";
export const AUTOTUNE_SETTINGS: readonly AutotuneSetting[] = ["on", "off", "refresh"];

/** FMNIST_AUTOTUNE (default on); throws naming the variable on a bad value. */
export function autotuneSetting(): AutotuneSetting {
  return oneOf("FMNIST_AUTOTUNE", AUTOTUNE_SETTINGS, "on");
}

export const DENSE_MODES = ["auto", "gemm", "matmul"] as const;
export type DenseMode = (typeof DENSE_MODES)[number];

/** FMNIST_DENSE (default auto); throws naming the variable on a bad value. */
export function denseMode(): DenseMode {
  return oneOf("FMNIST_DENSE", DENSE_MODES, "auto");
}

/** FMNIST_NAIVE_KERNELS=1: the naive oracle kernels run instead of the tiled ones. */
export function useNaiveKernels(): boolean {
  return readFlag("FMNIST_NAIVE_KERNELS") === "1";
}

/** FMNIST_TILE_CONFIG as a list of config ids (empty when unset). */
export function forcedTileConfigIds(): string[] {
  return (readFlag("FMNIST_TILE_CONFIG") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** FMNIST_PRINT_SHADER, or undefined. */
export function printShaderSpec(): string | undefined {
  return readFlag("FMNIST_PRINT_SHADER") || undefined;
}

/** FMNIST_DEBUG=1. */
export function debugErrors(): boolean {
  return readFlag("FMNIST_DEBUG") === "1";
}
