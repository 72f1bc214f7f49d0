// What one lane's operation costs on a software adapter (llvmpipe/lavapipe), one thing varied
// at a time: the cost model behind the conv generator's software configurations
// (src/ops/conv/gemm_wgsl.ts's header has the findings). Raw WebGPU, no tfjs.
//
//   deno run -A bench/probes/lavapipe_rules_probe.ts [--k 1024] [--groups 256] [--reps 5]
//     [--elements 1048576] [--only SUBSTRING]   (only the variants whose name contains it, plus the mul+add baseline)
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
  /** Accumulators (default 8). */
  acc?: number;
  /** Operations per iteration, the denominator of the printed cost (default: acc). */
  ops?: number;
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

/** vec4 elements of the uniform buffer: 64 KiB, WebGPU's default maxUniformBufferBindingSize. */
const UBO_VEC4S = 4096;

function uboVec4(base: string): string {
  return `let v0 = ubo[(${base} + i * 2u) & ${UBO_VEC4S - 1}u];
    let v1 = ubo[(${base} + i * 2u + 1u) & ${UBO_VEC4S - 1}u];
    a0 += v0.x; a1 += v0.y; a2 += v0.z; a3 += v0.w;
    a4 += v1.x; a5 += v1.y; a6 += v1.z; a7 += v1.w;`;
}

/**
 * The inner loop of a forward register tile in miniature, rows x cols x vec4 along the reduction,
 * per iteration: rows + taps - 1 input vec4 loads at per-lane addresses, taps x 4 x cols/4
 * filter vec4 loads at a workgroup-uniform address (the tile's columns come from the
 * workgroup), from storage (`src4`) or from the uniform buffer (`ubo`), and rows x cols x 4 x
 * taps multiply-adds. taps = 1 is a pixel-row tile, taps = 3 a row window of a 3x3 filter (the
 * taps of one filter row share the input pixels). The printed cost is per multiply-add: what
 * the filter's source changes in a real tile.
 */
function tile(
  filter: "src4" | "ubo",
  rows: number,
  cols: number,
  taps = 1,
  input: "src4" | "tex" = "src4",
): Variant {
  const c4 = cols / 4;
  const mask = filter === "ubo" ? `${UBO_VEC4S - 1}u` : "mask4";
  const inputs = rows + taps - 1;
  const lines: string[] = [];
  for (let r = 0; r < inputs; r++) {
    const at = `(lb + i * ${inputs}u + ${r}u) & mask4`;
    lines.push(
      input === "tex"
        ? `let x${r} = textureLoad(tx, vec2<u32>((${at}) & ${TEX_W - 1}u, ((${at}) >> ${
          Math.log2(TEX_W)
        }u) & ${TEX_H - 1}u), 0);`
        : `let x${r} = src4[${at}];`,
    );
  }
  const perTap = 4 * c4;
  const xyzw = "xyzw";
  for (let t = 0; t < taps; t++) {
    for (let q = 0; q < 4; q++) {
      for (let c = 0; c < c4; c++) {
        const at = t * perTap + q * c4 + c;
        lines.push(
          `let w${t}_${q}_${c} = ${filter}[(wb + i * ${taps * perTap}u + ${at}u) & ${mask}];`,
        );
      }
    }
    for (let r = 0; r < rows; r++) {
      for (let q = 0; q < 4; q++) {
        for (let c = 0; c < cols; c++) {
          lines.push(
            `a${r * cols + c} += x${r + t}.${xyzw[q]} * w${t}_${q}_${c >> 2}.${xyzw[c & 3]};`,
          );
        }
      }
    }
  }
  const shape = taps === 1 ? `r${rows}c${cols}` : `win${rows}x${cols}`;
  return {
    name: `tile ${shape} ${filter === "ubo" ? "ubo" : "ssbo"}${input === "tex" ? "+tex" : ""}`,
    what: `${shape}v4 forward step${taps === 1 ? "" : ` (${taps} taps)`}, filter vec4s from ${
      filter === "ubo" ? "a uniform" : "a storage"
    } buffer`,
    body: lines.join("\n    "),
    acc: rows * cols,
    ops: rows * cols * 4 * taps,
  };
}

/** Texels per row of the probe's texture (TEX_W x TEX_H = the storage buffer's 1 Mi floats / 4). */
const TEX_W = 1024, TEX_H = 256;

function texVec4(base: string): string {
  const at = (k: number) => `(${base} + i * 2u + ${k}u) & ${TEX_W * TEX_H - 1}u`;
  const texel = (k: number) =>
    `textureLoad(tx, vec2<u32>((${at(k)}) & ${TEX_W - 1}u, (${at(k)}) >> ${Math.log2(TEX_W)}u), 0)`;
  return `let v0 = ${texel(0)};
    let v1 = ${texel(1)};
    a0 += v0.x; a1 += v0.y; a2 += v0.z; a3 += v0.w;
    a4 += v1.x; a5 += v1.y; a6 += v1.z; a7 += v1.w;`;
}

const ACC = [0, 1, 2, 3, 4, 5, 6, 7];
const sum = (f: (j: number) => string) => ACC.map(f).join("\n    ");
/** Two vec4 storage loads from `base` (8 floats) into the 8 accumulators. */
const twoVec4Loads = (base: string) =>
  `let v0 = src4[(${base} + i * 2u) & mask4];
    let v1 = src4[(${base} + i * 2u + 1u) & mask4];
    a0 += v0.x; a1 += v0.y; a2 += v0.z; a3 += v0.w;
    a4 += v1.x; a5 += v1.y; a6 += v1.z; a7 += v1.w;`;

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
    body: twoVec4Loads("lb"),
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
  {
    name: "load vec4 wg-unif",
    what: "2 vec4 storage loads at a workgroup-uniform address (8 floats)",
    body: twoVec4Loads("wb"),
  },
  // The same loads from a uniform buffer (array<vec4<f32>, UBO_VEC4S>: a uniform array's stride
  // is 16 bytes, so a scalar is one component of an element).
  {
    name: "ubo lane",
    what: "ubo[per-lane address].x: one float per load",
    body: sum((j) => `a${j} += ubo[(lb + i * 8u + ${j}u) & ${UBO_VEC4S - 1}u].x;`),
  },
  {
    name: "ubo vec4 lane",
    what: "2 vec4 uniform loads at per-lane addresses (8 floats)",
    body: uboVec4("lb"),
  },
  {
    name: "ubo wg-uniform",
    what: "ubo[workgroup id + loop counter].x: the same address in every lane",
    body: sum((j) => `a${j} += ubo[(wb + i * 8u + ${j}u) & ${UBO_VEC4S - 1}u].x;`),
  },
  {
    name: "ubo vec4 wg-unif",
    what: "2 vec4 uniform loads at a workgroup-uniform address (8 floats)",
    body: uboVec4("wb"),
  },
  {
    name: "ubo loop-uniform",
    what: "ubo[loop counter].x: the same address in every lane, no id at all",
    body: sum((j) => `a${j} += ubo[(i * 8u + ${j}u) & ${UBO_VEC4S - 1}u].x;`),
  },
  // The same loads from an rgba32float texture (textureLoad, texel i at (i % TEX_W, i / TEX_W)):
  // the path of the `.tex` configs (src/tf/uniform_inputs.ts).
  {
    name: "tex vec4 lane",
    what: "2 texel (vec4) fetches at per-lane addresses (8 floats)",
    body: texVec4("lb"),
  },
  {
    name: "tex vec4 wg-unif",
    what: "2 texel (vec4) fetches at a workgroup-uniform address (8 floats)",
    body: texVec4("wb"),
  },
  tile("src4", 4, 8),
  tile("ubo", 4, 8),
  tile("src4", 16, 32),
  tile("ubo", 16, 32),
  tile("src4", 28, 16, 3),
  tile("ubo", 28, 16, 3),
  tile("ubo", 28, 16, 3, "tex"),
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
@group(0) @binding(4) var<uniform> ubo : array<vec4<f32>, ${UBO_VEC4S}>;
@group(0) @binding(5) var tx : texture_2d<f32>;
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
  // Floats in the storage buffer the storage variants read (a power of 2): 16384 = the uniform
  // buffer's 64 KiB, for a comparison of the two at the same working set.
  const elements = Number(arg("elements", String(1 << 20)));
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
  const ubo = device.createBuffer({
    size: UBO_VEC4S * 16,
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
      ...[3, 4].map((binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform" as const },
      })),
      {
        binding: 5,
        visibility: GPUShaderStage.COMPUTE,
        texture: { sampleType: "unfilterable-float" as const },
      },
    ],
  });
  const texture = device.createTexture({
    size: [TEX_W, TEX_H],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING,
  });
  const info = adapter.info;
  console.log(
    `${
      info.description || info.vendor
    }; ${groups} workgroups x 64 lanes x ${k} iterations x 8 ops; ` +
      `median of ${reps}; CPU ns per lane-op (process CPU time)`,
  );
  let base = 0;
  console.log(
    `maxUniformBufferBindingSize: adapter ${adapter.limits.maxUniformBufferBindingSize}, ` +
      `device (default limits) ${device.limits.maxUniformBufferBindingSize}`,
  );
  const only = arg("only", "");
  for (const v of VARIANTS) {
    if (only && v.name !== "mul+add" && !v.name.includes(only)) continue;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: shader(v) });
    const pipeline = device.createComputePipeline({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const bind = device.createBindGroup({
      layout,
      entries: [
        ...[src, src, out, params, ubo].map((buffer, binding) => ({
          binding,
          resource: { buffer } as GPUBindingResource,
        })),
        { binding: 5, resource: texture.createView() },
      ],
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
    const perOp = ns[Math.floor(ns.length / 2)] / (groups * 64 * k * (v.ops ?? v.acc ?? 8));
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
