// Chart rendering: Vega-Lite spec -> Vega -> SVG (headless, no DOM) -> PNG (resvg), plus small PNG
// helpers for 28x28 garment pictures.
//
// Library choice: `vega` renders to an SVG string without a browser (renderer "none" + toSVG()).
// `@resvg/resvg-js` (a Rust SVG renderer shipped as a prebuilt N-API addon inside its npm package)
// loads in Deno as is and renders text with the system fonts (the WASM build has no font access).
// It is imported lazily: if the native addon cannot load (a platform without a prebuilt binary),
// evaluation still writes the SVGs and the report, and only the PNG copies are skipped.
// `fast-png` is a pure-JS PNG codec (encodes the garment thumbnails, decodes user PNGs).

import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { encode as encodePng } from "fast-png";

/** Font list used by every chart; resvg and browsers both take the first one installed. */
export const CHART_FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

export interface RenderedChart {
  svg: string;
  /** null when the PNG renderer is unavailable (see pngRendererError). */
  png: Uint8Array | null;
  /** SVG size in CSS pixels; the PNG is `scale` times larger. */
  width: number;
  height: number;
}

/** Compiles a Vega-Lite spec and renders it to SVG without a browser. */
export async function vegaLiteToSvg(spec: TopLevelSpec): Promise<string> {
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

type ResvgModule = typeof import("@resvg/resvg-js");
let resvg: Promise<ResvgModule> | undefined;

/** Why the PNG renderer cannot load, or null when it works. */
export async function pngRendererError(): Promise<string | null> {
  resvg ??= import("@resvg/resvg-js");
  try {
    await resvg;
    return null;
  } catch (e) {
    return `@resvg/resvg-js failed to load (${(e as Error).message.split("\n")[0]})`;
  }
}

/** Rasterises an SVG with resvg at `scale` (2 gives sharp text on high-DPI screens). */
export async function svgToPng(
  svg: string,
  scale = 2,
): Promise<{ png: Uint8Array; width: number; height: number }> {
  resvg ??= import("@resvg/resvg-js");
  const { Resvg } = await resvg;
  const image = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: "white",
    font: {
      loadSystemFonts: true,
      defaultFontFamily: "DejaVu Sans",
      sansSerifFamily: "DejaVu Sans",
    },
  }).render();
  return { png: new Uint8Array(image.asPng()), width: image.width, height: image.height };
}

/** Renders a Vega-Lite spec to SVG, and to PNG when the PNG renderer is available. */
export async function renderChart(spec: TopLevelSpec, scale = 2): Promise<RenderedChart> {
  const svg = await vegaLiteToSvg(spec);
  const size = svgSize(svg);
  const png = (await pngRendererError()) === null ? (await svgToPng(svg, scale)).png : null;
  return { svg, png, ...size };
}

/** Width and height attributes of the root <svg> element (what vega writes). */
export function svgSize(svg: string): { width: number; height: number } {
  const root = svg.match(/<svg\b[^>]*>/)?.[0] ?? "";
  const width = Number(root.match(/\bwidth="([\d.]+)"/)?.[1]);
  const height = Number(root.match(/\bheight="([\d.]+)"/)?.[1]);
  if (!(width > 0 && height > 0)) throw new Error("rendered SVG has no width/height");
  return { width, height };
}

/** PNG bytes of an 8-bit greyscale image (row-major). */
export function grayPng(pixels: Uint8Array, width: number, height: number): Uint8Array {
  if (pixels.length !== width * height) {
    throw new RangeError(`grayPng: ${pixels.length} pixels for ${width}x${height}`);
  }
  return encodePng({ width, height, data: pixels, channels: 1, depth: 8 });
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  const CHUNK = 0x8000; // String.fromCharCode's argument count limit
  for (let i = 0; i < bytes.length; i += CHUNK) {
    s += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(s);
}

export function dataUrl(mime: string, bytes: Uint8Array | string): string {
  const raw = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return `data:${mime};base64,${base64(raw)}`;
}

/** PNG signature check and IHDR size (for tests and sanity checks). */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.length < 24 || SIG.some((b, i) => png[i] !== b)) throw new Error("not a PNG file");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}
