// Does this adapter stop long loops? Mesa's lavapipe up to 22.x (Debian 12's 22.3.6) ends any
// WGSL loop after 65,535 iterations without an error, and its count runs across nested loops, so
// a kernel whose invocation loops longer returns a silently short sum. Mesa 25.0.7's lavapipe,
// SwiftShader and GPUs run loops to the end. Several ops keep a workaround for the capped case
// (batch slices, split reductions, a two-kernel fallback); they ask `loopCapped()` here instead
// of reading a driver version, because the cap is a property of the compiled code that only the
// adapter itself can tell: `probeLoopCap` runs one tiny kernel that counts to 70,000 in one loop
// and to 300 x 300 in two nested loops, and reads both counts back. Measured with this kernel on
// the 2-core AMD EPYC: Mesa 22.3.6 returns [65,535, 1], Mesa 25.0.7 [70,000, 90,000].
//
// The answer is one per process (the adapter does not change under a running process), cached.
// Until a probe has run, and on backends without a WebGPU device (cpu), the ops assume the cap:
// the workarounds are right on every adapter, only slower where they are not needed.

/** lavapipe's cap (Mesa <= 22.x: gallivm's LP_MAX_TGSI_LOOP_ITERATIONS). */
export const LAVAPIPE_LOOP_CAP = 65_535;

/** Iterations the ops' loops may run per invocation where the adapter caps them (a margin). */
export const CAPPED_LOOP_BUDGET = 60_000;

/** Counts the probe asks for: past the cap in one loop, and in two nested loops. */
export const PROBE_SINGLE = 70_000;
export const PROBE_NESTED: readonly [outer: number, inner: number] = [300, 300];

export interface LoopCapProbe {
  /** True when either loop stopped short. */
  capped: boolean;
  /** Iterations the single loop completed (PROBE_SINGLE when uncapped). */
  single: number;
  /** Iterations the nested loops completed (outer x inner when uncapped). */
  nested: number;
}

// The counts come from a uniform so that no compiler can fold the loops away.
const PROBE_WGSL = /* wgsl */ `
struct Counts { single: u32, outer: u32, inner: u32, pad: u32 }
@group(0) @binding(0) var<storage, read_write> result: array<u32, 2>;
@group(0) @binding(1) var<uniform> counts: Counts;

@compute @workgroup_size(1)
fn main() {
  var single = 0u;
  for (var i = 0u; i < counts.single; i++) { single += 1u; }
  result[0] = single;
  var nested = 0u;
  for (var i = 0u; i < counts.outer; i++) {
    for (var j = 0u; j < counts.inner; j++) { nested += 1u; }
  }
  result[1] = nested;
}
`;

/** Runs the probe kernel once on `device` (not cached: use `ensureLoopCapProbed` in the app). */
export async function probeLoopCap(device: GPUDevice): Promise<LoopCapProbe> {
  const [outer, inner] = PROBE_NESTED;
  const module = device.createShaderModule({ code: PROBE_WGSL });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const result = device.createBuffer({
    size: 8,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const counts = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const readback = device.createBuffer({
    size: 8,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    // Poisoned, so that a kernel that never ran reads as capped rather than as a count.
    device.queue.writeBuffer(result, 0, new Uint32Array([0xffffffff, 0xffffffff]));
    device.queue.writeBuffer(counts, 0, new Uint32Array([PROBE_SINGLE, outer, inner, 0]));
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: result } },
        { binding: 1, resource: { buffer: counts } },
      ],
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
    encoder.copyBufferToBuffer(result, 0, readback, 0, 8);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const [single, nested] = new Uint32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    return { capped: single !== PROBE_SINGLE || nested !== outer * inner, single, nested };
  } finally {
    result.destroy();
    counts.destroy();
    readback.destroy();
  }
}

let probed: LoopCapProbe | null = null;
let pending: Promise<LoopCapProbe> | null = null;
let forced: boolean | null = null;

/** Probes once per process (later calls, with any device, get the first answer). */
export function ensureLoopCapProbed(device: GPUDevice): Promise<LoopCapProbe> {
  pending ??= probeLoopCap(device).then((r) => (probed = r));
  return pending;
}

/** The cached probe result, or null before `ensureLoopCapProbed` finished. */
export function loopCapProbe(): LoopCapProbe | null {
  return probed;
}

/**
 * Whether kernels must keep every loop under the cap: the injected value inside
 * `withLoopCapped`, else the probe's answer, else true (not probed yet, or no WebGPU device).
 */
export function loopCapped(): boolean {
  return forced ?? probed?.capped ?? true;
}

/**
 * Longest loop the ops may give one invocation: `CAPPED_LOOP_BUDGET` where loops are capped,
 * unbounded otherwise.
 */
export function loopBudget(): number {
  return loopCapped() ? CAPPED_LOOP_BUDGET : Number.POSITIVE_INFINITY;
}

/** Runs `f` with `loopCapped()` answering `capped` (tests; restored afterwards, also on throw). */
export function withLoopCapped<T>(capped: boolean, f: () => T): T {
  const before = forced;
  forced = capped;
  try {
    return f();
  } finally {
    forced = before;
  }
}
