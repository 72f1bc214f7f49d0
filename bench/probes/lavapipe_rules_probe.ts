// What one lane's operation costs on a software adapter (llvmpipe/lavapipe), one thing varied
// at a time: the cost model behind the conv generator's software configurations
// (src/ops/conv/gemm_wgsl.ts's header has the findings). Raw WebGPU, no tfjs.
//
//   deno run -A bench/probes/lavapipe_rules_probe.ts [--k 1024] [--groups 256] [--reps 5]
//
// Every kernel runs `groups` workgroups of 64 invocations; each invocation loops k times doing
// 8 operations of one kind on 8 independent accumulators (no latency chain). Printed: process
// CPU time per lane-operation (all llvmpipe threads; steadier than wall time on a shared
// machine), median of --reps, and the ratio to a multiply-add.

import process from "node:process";
import { arg } from "./probe_args.ts";

interface Variant {
  name: string;
  what: string;
  body: string;
  /** Accumulators (default 8): ops per iteration. */
  acc?: number;
}

/** Multiply-adds on n accumulators: where the register file ends (16 ymm with AVX2, 32 with AVX-512). */
function accumulators(n: number): Variant {
  const js = [...Array(n).keys()];
  return {
    name: `mul+add ${n} acc`,
    what: `a = a * s + t on ${n} accumulators`,
    body: js.map((j) => `a${j} = a${j} * s + t;`).join("\n    "),
    acc: n,
  };
}

const ACC = [0, 1, 2, 3, 4, 5, 6, 7];
const sum = (f: (j: number) => string) => ACC.map(f).join("\n    ");

const VARIANTS: Variant[] = [
  {
    name: "mul+add",
    what: "a = a * s + t, no loads (WGSL does not contract it)",
    body: sum((j) => `a${j} = a${j} * s + t;`),
  },
  {
    name: "fma()",
    what: "a = fma(a, s, t), no loads",
    body: sum((j) => `a${j} = fma(a${j}, s, t);`),
  },
  {
    name: "load lane",
    what: "src[per-lane address]: each lane its own address",
    body: sum((j) => `a${j} += src[(lb + i * 8u + ${j}u) & mask];`),
  },
  {
    name: "load vec4 lane",
    what: "2 vec4 loads at per-lane addresses (8 floats)",
    body: `let v0 = src4[(lb + i * 2u) & mask4];
    let v1 = src4[(lb + i * 2u + 1u) & mask4];
    a0 += v0.x; a1 += v0.y; a2 += v0.z; a3 += v0.w;
    a4 += v1.x; a5 += v1.y; a6 += v1.z; a7 += v1.w;`,
  },
  {
    name: "load wg-uniform",
    what: "src[workgroup id + loop counter]: the same address in every lane",
    body: sum((j) => `a${j} += src[(wb + i * 8u + ${j}u) & mask];`),
  },
  {
    name: "load loop-uniform",
    what: "src[loop counter]: the same address in every lane, no id at all",
    body: sum((j) => `a${j} += src[(i * 8u + ${j}u) & mask];`),
  },
  accumulators(16),
  accumulators(32),
  accumulators(64),
  accumulators(128),
  {
    name: "load workgroup mem",
    what: "var<workgroup> array at per-lane addresses",
    body: sum((j) => `a${j} += sh[(lid * 7u + i * 8u + ${j}u) & 255u];`),
  },
];

function shader(v: Variant): string {
  const accs = [...Array(v.acc ?? 8).keys()];
  return `
@group(0) @binding(0) var<storage, read> src : array<f32>;
@group(0) @binding(1) var<storage, read> src4 : array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out : array<f32>;
struct Params { k : u32, mask : u32, mask4 : u32, s : f32 }
@group(0) @binding(3) var<uniform> p : Params;
var<workgroup> sh : array<f32, 256>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid : vec3<u32>,
        @builtin(local_invocation_index) lid : u32,
        @builtin(workgroup_id) wid : vec3<u32>) {
  for (var e = lid; e < 256u; e += 64u) { sh[e] = f32(e); }
  workgroupBarrier();
  let mask = p.mask;
  let mask4 = p.mask4;
  let s = p.s;
  let t = 1.0 - p.s;
  let lb = gid.x * 97u;
  let wb = wid.x * 97u;
${accs.map((j) => `  var a${j} = f32(gid.x + ${j}u);`).join("\n")}
  for (var i = 0u; i < p.k; i++) {
    ${v.body}
  }
  out[gid.x] = ${accs.map((j) => `a${j}`).join(" + ")};
}
`;
}

async function main() {
  const k = Number(arg("k", "1024"));
  const groups = Number(arg("groups", "256"));
  const reps = Number(arg("reps", "5"));
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice();
  const elements = 1 << 20;
  const src = device.createBuffer({ size: elements * 4, usage: GPUBufferUsage.STORAGE });
  const out = device.createBuffer({
    size: groups * 64 * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const readback = device.createBuffer({
    size: 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const params = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const p = new ArrayBuffer(16);
  new Uint32Array(p, 0, 3).set([k, elements - 1, elements / 4 - 1]);
  new Float32Array(p, 12, 1)[0] = 0.999;
  device.queue.writeBuffer(params, 0, p);
  // Explicit: "auto" would drop the bindings a variant does not use.
  const layout = device.createBindGroupLayout({
    entries: [
      ...(["read-only-storage", "read-only-storage", "storage"] as const).map((type, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type },
      })),
      { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" as const } },
    ],
  });
  const info = adapter.info;
  console.log(
    `${
      info.description || info.vendor
    }; ${groups} workgroups x 64 lanes x ${k} iterations x 8 ops; ` +
      `median of ${reps}; CPU ns per lane-op (process CPU time)`,
  );
  let base = 0;
  for (const v of VARIANTS) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: shader(v) });
    const pipeline = device.createComputePipeline({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const bind = device.createBindGroup({
      layout,
      entries: [src, src, out, params].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });
    const once = async () => {
      const c0 = process.cpuUsage();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(groups);
      pass.end();
      enc.copyBufferToBuffer(out, 0, readback, 0, 4);
      device.queue.submit([enc.finish()]);
      await readback.mapAsync(GPUMapMode.READ); // waits for the dispatch itself
      readback.unmap();
      const c = process.cpuUsage(c0);
      return (c.user + c.system) * 1e3; // ns
    };
    await once(); // compile
    const error = await device.popErrorScope();
    if (error) throw new Error(`${v.name}: ${error.message}`);
    const ns: number[] = [];
    for (let r = 0; r < reps; r++) ns.push(await once());
    ns.sort((a, b) => a - b);
    const perOp = ns[Math.floor(ns.length / 2)] / (groups * 64 * k * (v.acc ?? 8));
    if (v.name === "mul+add") base = perOp;
    console.log(
      `${v.name.padEnd(20)} ${perOp.toFixed(3).padStart(7)} ns  ${
        (perOp / base).toFixed(1).padStart(5)
      }x  ${v.what}`,
    );
  }
  device.destroy();
}

if (import.meta.main) await main();
