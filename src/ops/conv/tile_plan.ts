// Which kernel shape each problem runs, as one immutable value: the tuner's table (or a test's,
// or the browser's pins) travels from whoever decided it to the op's dispatch as the `tiles`
// attribute of every conv and dense op call (ConvAttrs.tiles; the gradients pass their forward's
// attrs on, so the backward views get the same plan). Nothing is looked up in module state: an
// op called without `tiles` runs the defaults of the adapter its backend runs on.
//
//   tilePlan(kind, parts)            a plan: adapter kind, conv table, dense table, pinned configs
//   pinTileConfig(plan, config)      the same plan with `config` forced for its view (timing a
//                                    candidate, tests)
//   tileConfigFor(plan, view, g, b)  the config a dispatch runs (pinned, FMNIST_TILE_CONFIG, the
//                                    table, the adapter kind's default; Winograd only where it
//                                    serves the shape)
//   planOf(attrs, backend)           the op attr's plan, else the backend adapter's defaults

import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import type { ConvGeometry } from "./geometry.ts";
import {
  type AdapterKind,
  adapterKindOf,
  allConfigs,
  configById,
  CONV_VIEWS,
  type ConvView,
  defaultConfig,
  shapeKey,
  type TileConfig,
} from "./tiling.ts";
import { winogradApplies } from "./winograd_geometry.ts";
import { winogradServes } from "./winograd.ts";
import { forcedTileConfigIds } from "../../flags.ts";

/** Which matrix product a dense layer runs: our GEMM (dense_bias_act) or tfjs's fused matMul. */
export type DenseImpl = "gemm" | "matmul";

export interface TilePlan {
  /** The adapter kind whose defaults apply where nothing else decides. */
  readonly kind: AdapterKind;
  /** shapeKey (tiling.ts) -> config: the tuner's choices for this adapter. */
  readonly conv: ReadonlyMap<string, TileConfig>;
  /** denseProblemKey (dense_bias_act.ts) -> implementation. */
  readonly dense: ReadonlyMap<string, DenseImpl>;
  /** Configs forced per view, over the table (the last one pinned for a view wins). */
  readonly pinned: readonly TileConfig[];
}

const BRAND = Symbol("TilePlan");

/** A plan for an adapter of `kind`; tables and pins default to empty. */
export function tilePlan(
  kind: AdapterKind,
  parts: Partial<Omit<TilePlan, "kind">> = {},
): TilePlan {
  const plan = {
    kind,
    conv: parts.conv ?? new Map(),
    dense: parts.dense ?? new Map(),
    pinned: parts.pinned ?? [],
  };
  Object.defineProperty(plan, BRAND, { value: true }); // not enumerable: a spread copy is no plan
  return Object.freeze(plan);
}

export function isTilePlan(x: unknown): x is TilePlan {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
}

/** `plan` with `config` forced for its view. */
export function pinTileConfig(plan: TilePlan, config: TileConfig): TilePlan {
  return tilePlan(plan.kind, { ...plan, pinned: [...plan.pinned, config] });
}

/** FMNIST_TILE_CONFIG's config for `view`, if it names one (throws on an unknown id). */
function flagPinned(view: ConvView): TileConfig | undefined {
  for (const id of forcedTileConfigIds()) {
    const c = configById(id);
    if (!c) {
      throw new Error(
        `FMNIST_TILE_CONFIG: unknown tile config '${id}' (known: ${
          CONV_VIEWS.flatMap((v) => allConfigs(v).map((t) => t.id)).join(", ")
        })`,
      );
    }
    if (c.view === view) return c;
  }
  return undefined;
}

/**
 * The configuration a dispatch of `view` at `g` runs: pinned in the plan, else named by
 * FMNIST_TILE_CONFIG, else the plan's table, else the adapter kind's default. A Winograd config
 * where Winograd does not serve the shape (not 3x3 stride 1, or a transformed buffer past the
 * device's largest storage binding) gives way to the default too.
 */
export function tileConfigFor(
  plan: TilePlan,
  view: ConvView,
  g: ConvGeometry,
  backend?: Pick<WebGPUBackend, "device">,
): TileConfig {
  const pinned = [...plan.pinned].reverse().find((c) => c.view === view) ?? flagPinned(view);
  let config = pinned ?? plan.conv.get(shapeKey(view, g));
  if (config && config.view !== view) config = undefined; // a stale cache entry: ignore it
  if (config?.winograd && !winogradApplies(g)) config = undefined;
  const limit = backend?.device.limits.maxStorageBufferBindingSize;
  if (config?.winograd && limit !== undefined && !winogradServes(view, g, limit)) {
    config = undefined;
  }
  return config ?? defaultConfig(view, plan.kind, g);
}

/**
 * The adapter kind of a tfjs WebGPU backend, from the adapter info tfjs keeps (vendor and
 * architecture). Under Deno the vendor is the Vulkan vendor id: 0x10005 is Mesa's own id,
 * which its software rasterizer lavapipe reports (hardware Mesa drivers report the GPU maker's),
 * and 0x1AE0 is Google's, SwiftShader's; in a browser the architecture names SwiftShader.
 */
export function backendAdapterKind(backend: unknown): AdapterKind {
  const info = (backend as { adapterInfo?: { vendor?: string; architecture?: string } })
    .adapterInfo;
  const vendor = String(info?.vendor ?? "").toLowerCase();
  if (vendor === String(0x10005) || vendor === "0x10005") return "software";
  if (vendor === String(0x1ae0) || vendor === "0x1ae0") return "software";
  return adapterKindOf({ vendor, architecture: info?.architecture });
}

const defaults = new WeakMap<object, TilePlan>();

/** The plan an op runs when its call passes none: the backend adapter's defaults. */
export function defaultTilePlan(backend: object): TilePlan {
  let plan = defaults.get(backend);
  if (!plan) {
    plan = tilePlan(backendAdapterKind(backend));
    defaults.set(backend, plan);
  }
  return plan;
}

/** The plan of an op's attrs, else the backend adapter's defaults. */
export function planOf(attrs: { tiles?: unknown } | undefined, backend: object): TilePlan {
  const t = attrs?.tiles;
  if (t === undefined || t === null) return defaultTilePlan(backend);
  if (!isTilePlan(t)) throw new Error("attrs.tiles must be a TilePlan (conv/tile_plan.ts)");
  return t;
}

/** shapeKey -> config id for every (view, geometry) given: what the dispatch runs under `plan`. */
export function planChoices(
  plan: TilePlan,
  problems: Iterable<{ view: ConvView; g: ConvGeometry }>,
  backend?: Pick<WebGPUBackend, "device">,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const { view, g } of problems) {
    out.set(shapeKey(view, g), tileConfigFor(plan, view, g, backend).id);
  }
  return out;
}
