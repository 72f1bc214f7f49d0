// Loads of a hand-written kernel's inputs through `fn load_NAME(i : i32) -> VT` functions, so
// that a program can read a vec4 input from storage or through a texture
// (src/tf/uniform_inputs.ts's texture-input marker and copies). Where a CPU lacks AVX-512, Mesa
// 22.3's lavapipe makes a storage load 10x a texel fetch (src/ops/conv/gemm_wgsl.ts's "CPU's
// rules"); the element-wise passes around the convolutions (pools, batch norm) are nothing but
// loads, but the copy into the texture costs more than it saves where storage loads are cheap,
// so they use textures only where load_cost.ts's probe found storage loads costly. The generated
// conv kernels choose per tile config (TileConfig.inputInTexture) instead.

import { fitsInputTexture, texelLoad, textureInputMarker } from "../../tf/uniform_inputs.ts";
import { storageLoadsCostly } from "./load_cost.ts";

let mode: "auto" | "on" | "off" = "auto";

/**
 * "auto": textures where the load-cost probe found storage loads costly (load_cost.ts); "on" /
 * "off": always / never (tests and A/B runs).
 */
export function setTextureLoads(m: "auto" | "on" | "off"): void {
  mode = m;
}

/** Whether a kernel reads an input of `elements` floats through a texture: vec4 elements (`width` 4) that fit one. */
export function textureLoadsApply(width: number, elements: number): boolean {
  const wanted = mode === "on" || (mode === "auto" && storageLoadsCostly());
  return wanted && width === 4 && fitsInputTexture(elements);
}

/**
 * `fn load_NAME(i : i32) -> type` for each of `names`: `NAME[i]`, or for `textured` ones (vec4
 * inputs) texel i of NAME_tex (uniform_inputs.ts's texelLoad), marked for the rewrite.
 */
export function inputLoadFunctions(
  names: readonly string[],
  type: string,
  textured: boolean,
): string {
  return names.map((n) =>
    textured
      ? `${textureInputMarker(n)}\nfn load_${n}(i : i32) -> vec4<f32> {\n` +
        `  return ${texelLoad(n, "i")};\n}`
      : `fn load_${n}(i : i32) -> ${type} {\n  return ${n}[i];\n}`
  ).join("\n");
}
