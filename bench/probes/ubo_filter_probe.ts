// What reading the filter through a uniform buffer (var<uniform>) instead of storage would give
// the real register kernels of the forward and backward-data views on a software adapter, before
// any generator support: with --ubo the default configs' generated modules are rewritten so that
// their filter binding is `var<uniform> w : array<vec4<f32>, N>`, and at each bind the filter is
// copied (in tfjs's own command encoder, so after whatever wrote it) into a buffer with UNIFORM
// usage that is bound in its place. Same WGSL otherwise, same dispatch.
//
//   deno run -A bench/probes/ubo_filter_probe.ts [--ubo] [--batch 128] [--reps 5]
//       [--shapes 28x32x32,14x32x32] [--views fwd,bwdData]
//
// Shapes are HxCinxCout, 3x3 filter, stride 1, "same"; a uniform binding holds 64 KiB here
// (Deno's maxUniformBufferBindingSize on lavapipe), so Cin x Cout <= 1820. Prints process CPU
// ms per view (median of --reps after a warm-up) and a checksum of the output: the two modes
// must print the same checksums (same arithmetic in the same order). Run the two modes
// alternately in one command to compare them.

import * as tf from "@tensorflow/tfjs-core";
import process from "node:process";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import { describeAdapter, initTf } from "../../src/tf/setup.ts";
import { type ConvView, defaultConfig } from "../../src/ops/conv/tiling.ts";
import { backendAdapterKind } from "../../src/ops/conv/tile_plan.ts";
import { arg } from "./probe_args.ts";
import { convProblem } from "./conv_problem.ts";

const UNIFORM_BYTES = 65536;

/** The programs whose filter binding is rewritten, and that binding's name. */
const FILTER_BINDING: Record<string, string> = {
  ConvFwdProgram: "w",
  ConvBwdDataProgram: "wt",
};

interface TfjsEncoder {
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
}

/** Rewrites the filter binding of the conv programs to a uniform array and rebinds it. */
function installUniformFilter(backend: WebGPUBackend): void {
  const device = backend.device;
  const rewritten = new WeakSet<GPUShaderModule>();
  const createModule = device.createShaderModule.bind(device);
  device.createShaderModule = (d) => {
    const name = FILTER_BINDING[d.label ?? ""];
    if (!name) return createModule(d);
    const decl = new RegExp(`var<storage, read> ${name}: array<vec4<f32>>;`);
    if (!decl.test(d.code)) throw new Error(`${d.label}: no vec4 binding ${name}`);
    const code = d.code.replace(
      decl,
      `var<uniform> ${name}: array<vec4<f32>, ${UNIFORM_BYTES / 16}>;`,
    );
    const module = createModule({ ...d, code });
    rewritten.add(module);
    return module;
  };
  const filterLayouts = new WeakSet<GPUBindGroupLayout>();
  const createPipeline = device.createComputePipeline.bind(device);
  device.createComputePipeline = (d) => {
    const pipeline = createPipeline(d);
    if (rewritten.has(d.compute.module)) {
      // Deno returns a new layout object per call: keep one, so that the bind hook knows it.
      const layout = pipeline.getBindGroupLayout(0);
      filterLayouts.add(layout);
      pipeline.getBindGroupLayout = () => layout;
    }
    return pipeline;
  };
  const uniformCopies = new Map<number, GPUBuffer>();
  const createBindGroup = device.createBindGroup.bind(device);
  const tfjs = backend as unknown as TfjsEncoder;
  device.createBindGroup = (d) => {
    if (!filterLayouts.has(d.layout)) return createBindGroup(d);
    const entries = [...(d.entries as GPUBindGroupEntry[])];
    const filter = entries[2].resource as GPUBufferBinding;
    const size = filter.size ?? filter.buffer.size;
    if (size > UNIFORM_BYTES) throw new Error(`filter of ${size} bytes > ${UNIFORM_BYTES}`);
    let copy = uniformCopies.get(size);
    if (!copy) {
      copy = device.createBuffer({
        size: UNIFORM_BYTES,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      uniformCopies.set(size, copy);
    }
    tfjs.ensureCommandEncoderReady();
    tfjs.endComputePassEncoder();
    tfjs.commandEncoder!.copyBufferToBuffer(filter.buffer, filter.offset ?? 0, copy, 0, size);
    entries[2] = { binding: 2, resource: { buffer: copy } };
    return createBindGroup({ ...d, entries });
  };
}

async function main() {
  const ubo = Deno.args.includes("--ubo");
  const batch = Number(arg("batch", "128"));
  const reps = Number(arg("reps", "5"));
  const views = arg("views", "fwd,bwdData").split(",") as ConvView[];
  const shapes = arg("shapes", "28x32x32,14x32x32").split(",").map((s) => s.split("x").map(Number));
  const report = await initTf("webgpu");
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  const backend = tf.backend() as unknown as WebGPUBackend;
  if (ubo) installUniformFilter(backend);
  const kind = backendAdapterKind(tf.backend());
  console.log(
    `${describeAdapter(report)}; filter from ${ubo ? "a uniform" : "a storage"} buffer; ` +
      `batch ${batch}; process CPU ms, median of ${reps}`,
  );
  for (const [hw, cin, cout] of shapes) {
    const p = convProblem(backend, batch, { h: hw, w: hw, cin, cout, k: 3 }, "same");
    for (const view of views) {
      const config = defaultConfig(view, kind);
      const once = async () => {
        const c0 = process.cpuUsage();
        const out = p.run[view](config);
        const values = await out.data();
        const c = process.cpuUsage(c0);
        out.dispose();
        return { ms: (c.user + c.system) / 1e3, values };
      };
      const { values } = await once();
      let sum = 0;
      for (const v of values) sum += Math.abs(v);
      const times: number[] = [];
      for (let r = 0; r < reps; r++) times.push((await once()).ms);
      times.sort((a, b) => a - b);
      console.log(
        `${hw}x${hw} ${cin}->${cout} ${view.padEnd(8)} ${config.id.padEnd(24)} ${
          ubo ? "ubo " : "ssbo"
        } ${times[Math.floor(reps / 2)].toFixed(1).padStart(7)} ms  checksum ${
          sum.toPrecision(10)
        } ${values[0]} ${values[values.length - 1]}`,
      );
    }
    p.dispose();
  }
}

if (import.meta.main) await main();
