// What every conv op checks before it runs: the attributes (strides 1 or 2, pad), float32
// inputs, per-channel vectors of Cout, and the geometry of x and filter under those attributes.
// One set of helpers, so the ops' messages and rules are the same.

import { UsageError } from "../../errors.ts";
import { type ConvGeometry, convGeometry, normalizeStrides } from "./geometry.ts";
import { isTilePlan, type TilePlan } from "./tile_plan.ts";

/**
 * Strides and padding as every conv kernel takes them (strides always a pair), and the tile plan
 * the call runs under (absent: the adapter's defaults). Gradients pass their forward's attrs on,
 * so the backward views run under the forward's plan.
 */
export interface ConvAttrs {
  strides: [number, number];
  pad: "same" | "valid";
  tiles?: TilePlan;
}

/**
 * Strides (a pair or one number; 1 or 2 each), pad and tiles; throws a UsageError naming a bad
 * value.
 */
export function convAttrs(
  attrs: { strides?: unknown; pad?: unknown; tiles?: unknown },
): ConvAttrs {
  const strides = normalizeStrides(attrs.strides as number | [number, number]);
  if (!Array.isArray(strides) || strides.length !== 2 || strides.some((s) => s !== 1 && s !== 2)) {
    throw new UsageError(`strides must be 1 or 2, got [${strides}]`);
  }
  const pad = attrs.pad;
  if (pad !== "same" && pad !== "valid") throw new UsageError(`pad must be same|valid, got ${pad}`);
  const tiles = attrs.tiles ?? undefined;
  if (tiles !== undefined && !isTilePlan(tiles)) {
    throw new UsageError("tiles must be a TilePlan (src/ops/conv/tile_plan.ts)");
  }
  return tiles ? { strides, pad, tiles } : { strides, pad };
}

/** The geometry of x and filter (shapes) under a kernel's attrs. */
export function kernelGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: { strides?: unknown; pad?: unknown },
): ConvGeometry {
  const a = convAttrs(attrs);
  return convGeometry(xShape, filterShape, a.strides, a.pad);
}

/** Throws a UsageError naming the tensor unless it is float32. */
export function checkFloat32(name: string, t: { dtype: string }): void {
  if (t.dtype !== "float32") throw new UsageError(`${name} must be float32, got ${t.dtype}`);
}

/** Throws a UsageError naming the tensor unless it is a float32 vector of `outC`. */
export function checkChannelVector(
  name: string,
  t: { dtype: string; shape: readonly number[] },
  outC: number,
): void {
  checkFloat32(name, t);
  if (t.shape.length !== 1 || t.shape[0] !== outC) {
    throw new UsageError(`${name} must have shape [${outC}] (filter Cout), got [${t.shape}]`);
  }
}

/** Throws naming the kernel and the tensor unless `t` has `shape`. */
export function checkShape(
  kernel: string,
  name: string,
  t: { shape: readonly number[] },
  shape: readonly number[],
): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${kernel}: ${name} must have shape [${shape}], got [${t.shape}]`);
  }
}
