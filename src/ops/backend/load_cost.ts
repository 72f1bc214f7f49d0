// Is a storage-buffer load costly on this adapter? Where a CPU lacks AVX-512, Mesa 22.3's
// lavapipe builds every storage load as a loop over the SIMD lanes that writes each lane's value
// through the stack, 10x the cost of a texel fetch (3.67 against 0.36 ns per float on a Zen 5 with
// AVX-512 masked off; with AVX-512, or on Mesa 25.0, 1.0-1.5x:
// src/ops/conv/gemm_wgsl.ts's "CPU's rules"). The element-wise passes (pools, batch norm) then
// gain from reading through textures (texture_loads.ts) despite the copy into the texture, and
// elsewhere lose by the copy (enhanced step, Mesa 25.0.7, Zen 5: 4-7% more CPU time). Like the
// loop cap (loop_cap.ts) this is a property of the compiled code that only the adapter can tell:
// `probeLoadCost` times one kernel of per-lane vec4 loads from storage against the same loads from
// a uniform buffer, alternating, and calls storage costly at STORAGE_COSTLY times the uniform
// loads' time. A uniform load costs what a texel fetch does on every lavapipe measured (0.36-0.40
// against 0.36-0.40 ns per float), and a texture dispatch in the probe broke Mesa 22.3's timestamp
// queries for the rest of the process (`deno task profile` then read ~0.04 ms per kernel; not
// investigated further), so the probe reads a uniform buffer. One answer per process; until it is
// known (and on GPUs, where nobody asks) storage is cheap.

/** Storage loads are "costly" at this multiple of the uniform loads' time (measured: 4.1-4.4x or 0.8-1.3x). */
export const STORAGE_COSTLY = 2.5;

/** vec4s the kernels read: 64 KiB, one uniform binding. */
const UBO_VEC4S = 4096;
const GROUPS = 64, ITERATIONS = 1024;

function probeWgsl(source: "storage" | "uniform"): string {
  const at = (k: number) => `(gid.x * 97u + i * 2u + ${k}u) & ${UBO_VEC4S - 1}u`;
  const load = (k: number) =>
    source === "storage" ? `src[${at(k)}]` : `ubo[(${at(k)}) & ${UBO_VEC4S - 1}u]`;
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> ubo: array<vec4<f32>, ${UBO_VEC4S}>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  for (var i = 0u; i < ${ITERATIONS}u; i++) {
    a += ${load(0)};
    b += ${load(1)};
  }
  out[gid.x] = a + b;
}`;
}

export interface LoadCostProbe {
  /** Milliseconds (wall, best of 3) of the storage kernel and of the uniform-buffer kernel. */
  storageMs: number;
  uniformMs: number;
  /** storageMs >= STORAGE_COSTLY x uniformMs. */
  storageCostly: boolean;
}

/** Times the two kernels on `device`, alternating, best of 3 each (not cached). */
export async function probeLoadCost(device: GPUDevice): Promise<LoadCostProbe> {
  const out = device.createBuffer({
    size: GROUPS * 64 * 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const readback = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const src = device.createBuffer({ size: UBO_VEC4S * 16, usage: GPUBufferUsage.STORAGE });
  const ubo = device.createBuffer({ size: UBO_VEC4S * 16, usage: GPUBufferUsage.UNIFORM });
  try {
    const layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "read-only-storage" } },
        { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ],
    });
    const group = device.createBindGroup({
      layout,
      entries: [
        { binding: 0, resource: { buffer: out } },
        { binding: 1, resource: { buffer: src } },
        { binding: 2, resource: { buffer: ubo } },
      ],
    });
    const pipelines = (["storage", "uniform"] as const).map((s) =>
      device.createComputePipeline({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: device.createShaderModule({ code: probeWgsl(s) }), entryPoint: "main" },
      })
    );
    const time = async (pipeline: GPUComputePipeline) => {
      const t0 = performance.now();
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(GROUPS);
      pass.end();
      encoder.copyBufferToBuffer(out, 0, readback, 0, 16);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ); // waits for the dispatch itself
      readback.unmap();
      return performance.now() - t0;
    };
    for (const p of pipelines) await time(p); // compile and warm
    const best = [Infinity, Infinity];
    for (let r = 0; r < 3; r++) {
      for (let k = 0; k < 2; k++) best[k] = Math.min(best[k], await time(pipelines[k]));
    }
    const [storageMs, uniformMs] = best;
    return { storageMs, uniformMs, storageCostly: storageMs >= STORAGE_COSTLY * uniformMs };
  } finally {
    out.destroy();
    readback.destroy();
    src.destroy();
    ubo.destroy();
  }
}

let probed: LoadCostProbe | null = null;
let pending: Promise<LoadCostProbe> | null = null;

/** Probes once per process (later calls, with any device, get the first answer). */
export function ensureLoadCostProbed(device: GPUDevice): Promise<LoadCostProbe> {
  pending ??= probeLoadCost(device).then((r) => (probed = r));
  return pending;
}

/** The cached probe result, or null before `ensureLoadCostProbed` finished. */
export function loadCostProbe(): LoadCostProbe | null {
  return probed;
}

/** Whether storage loads are costly here (false until probed). */
export function storageLoadsCostly(): boolean {
  return probed?.storageCostly ?? false;
}
