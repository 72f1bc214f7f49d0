// src/tf/driver_info.ts: finding the Vulkan driver in /proc/self/maps and its Mesa release.

import assert from "node:assert/strict";
import { loadedMesaVersion, mappedVulkanDrivers, mesaVersionIn } from "../src/tf/driver_info.ts";
import { initTf } from "../src/tf/setup.ts";
import { GPU_TEST } from "./helpers/gpu.ts";

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

Deno.test("mappedVulkanDrivers: ICD libraries, not the loader or other libraries", () => {
  const maps = [
    "7f00-7f01 r--p 00000000 fe:01 1 /usr/lib/x86_64-linux-gnu/libvulkan.so.1.3.239",
    "7f02-7f03 r-xp 00001000 fe:01 2 /usr/lib/x86_64-linux-gnu/libvulkan_lvp.so",
    "7f04-7f05 r--p 00000000 fe:01 2 /usr/lib/x86_64-linux-gnu/libvulkan_lvp.so",
    "7f06-7f07 r--p 00000000 fe:01 3 /usr/lib/chromium/libvk_swiftshader.so",
    "7f08-7f09 r--p 00000000 fe:01 4 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1",
    "7f0a-7f0b rw-p 00000000 00:00 0 [heap]",
  ].join("\n");
  assert.deepEqual(mappedVulkanDrivers(maps), [
    "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so",
    "/usr/lib/chromium/libvk_swiftshader.so",
  ]);
});

Deno.test("mesaVersionIn: the longest 'Mesa x.y.z...' string wins; none gives ''", () => {
  // Mesa 25.0.7's intel driver also keeps a copy cut to 16 bytes.
  const lib = "\0driver\0Mesa 25.0.7-2~bp\0\0xx\0Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)\0";
  assert.equal(mesaVersionIn(bytes(lib)), "Mesa 25.0.7-2~bpo12+1");
  assert.equal(mesaVersionIn(bytes("\0Mesa 22.3.6\0")), "Mesa 22.3.6");
  assert.equal(mesaVersionIn(bytes("SwiftShader Device (Subzero)\0Mesa only\0")), "");
});

Deno.test({
  name: "loadedMesaVersion: lavapipe names its release once an adapter exists",
  ...GPU_TEST,
  fn: async () => {
    const report = await initTf("webgpu");
    const version = loadedMesaVersion(report.description);
    assert.equal(version, report.driver);
    if (/llvmpipe/.test(report.description)) assert.match(version, /^Mesa \d+\.\d+\.\d+/);
  },
});
