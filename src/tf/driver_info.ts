// Which Vulkan driver (and which Mesa release) serves the WebGPU adapter.
//
// Deno's GPUAdapterInfo has no driver field (wgpu knows VkPhysicalDeviceDriverProperties but Deno
// does not pass it on), and lavapipe's description names only LLVM ("llvmpipe (LLVM 15.0.6, 256
// bits)": Mesa 22.3.6 and 25.0.7 both print exactly that on Debian 12). The Mesa release matters:
// 25.0 runs our training step 1.5x faster than 22.3 and no longer stops loops at 65,535
// iterations. So we read it from the driver library itself: once an adapter exists, the Vulkan
// driver is mapped into this process (/proc/self/maps names it, whichever ICD the loader chose,
// VK_ICD_FILENAMES included), and every Mesa driver carries its driverInfo string, "Mesa
// <version>" (e.g. "Mesa 25.0.7-2~bpo12+1"), in its read-only data. Where /proc is missing (not
// Linux), the ICD manifests named by VK_ICD_FILENAMES / VK_DRIVER_FILES are read instead.
// Nothing here assumes a distribution.

/** Libraries mapped into this process that look like Vulkan drivers (not the loader itself). */
export function mappedVulkanDrivers(maps: string): string[] {
  const found = new Set<string>();
  for (const line of maps.split("\n")) {
    const path = line.slice(line.indexOf("/")).trim();
    if (!line.includes("/") || !path.endsWith(".so") && !/\.so\.\d/.test(path)) continue;
    const base = path.slice(path.lastIndexOf("/") + 1);
    if (/^libvulkan\.so/.test(base)) continue; // the loader
    if (/vulkan|^libvk_|_icd|swiftshader/i.test(base)) found.add(path);
  }
  return [...found];
}

/**
 * "Mesa 25.0.7-2~bpo12+1" from a driver's bytes, or "" when it carries no Mesa version. The
 * longest occurrence wins: some drivers also keep a copy cut to a 16-byte field ("Mesa
 * 25.0.7-2~bp" in Mesa 25.0.7's intel and virtio drivers).
 */
export function mesaVersionIn(bytes: Uint8Array): string {
  // latin1 keeps one character per byte, so the regex sees the raw strings table.
  const text = new TextDecoder("latin1").decode(bytes);
  let best = "";
  for (const m of text.matchAll(/Mesa (\d+\.\d+\.\d+(?:-[0-9A-Za-z.+~]*[0-9A-Za-z+~])?)/g)) {
    if (m[1].length > best.length) best = m[1];
  }
  return best ? `Mesa ${best}` : "";
}

/** Driver libraries named by the ICD manifests in VK_ICD_FILENAMES / VK_DRIVER_FILES. */
function driversFromManifestEnv(): string[] {
  let list = "";
  try {
    list = Deno.env.get("VK_DRIVER_FILES") ?? Deno.env.get("VK_ICD_FILENAMES") ?? "";
  } catch {
    return []; // no --allow-env
  }
  const out: string[] = [];
  for (const manifest of list.split(Deno.build.os === "windows" ? ";" : ":").filter(Boolean)) {
    try {
      const lib = JSON.parse(Deno.readTextFileSync(manifest))?.ICD?.library_path;
      if (typeof lib === "string" && lib.includes("/")) out.push(lib);
    } catch { /* unreadable manifest: skip it */ }
  }
  return out;
}

let cached: string | undefined;

/**
 * The Mesa release of the Vulkan driver this process loaded ("Mesa 25.0.7-2~bpo12+1"), or "" when
 * the driver is not Mesa's (SwiftShader, NVIDIA) or cannot be read. Call after an adapter was
 * requested (before that no driver is loaded). Without VK_ICD_FILENAMES the loader maps every
 * installed driver (intel, radeon, lavapipe, ...); for an llvmpipe adapter lavapipe's is read
 * first. Cached once it finds one.
 */
export function loadedMesaVersion(adapterDescription = ""): string {
  if (cached) return cached;
  let candidates: string[] = [];
  try {
    candidates = mappedVulkanDrivers(Deno.readTextFileSync("/proc/self/maps"));
  } catch { /* not Linux, or no --allow-read */ }
  if (candidates.length === 0) candidates = driversFromManifestEnv();
  if (/llvmpipe|lavapipe/i.test(adapterDescription)) {
    const lvp = (p: string) => /lvp|lavapipe/.test(p.slice(p.lastIndexOf("/"))) ? 0 : 1;
    candidates.sort((a, b) => lvp(a) - lvp(b));
  }
  for (const path of candidates) {
    try {
      const version = mesaVersionIn(Deno.readFileSync(path));
      if (version) return (cached = version);
    } catch { /* unreadable: try the next */ }
  }
  return "";
}
