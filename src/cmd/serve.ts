// `fmnist serve --run DIR [--port N]`: the classifier page for a run, on http://127.0.0.1:N/.

import { parseCommandFlags } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { startServer } from "../serve/server.ts";

const DEFS = {
  run: { type: "string", help: "run folder (its best checkpoint is served) or checkpoint path" },
  port: { type: "int", min: 0, max: 65535, default: 8000, help: "port (0: any free port)" },
  host: {
    type: "string",
    default: "127.0.0.1",
    help: "address to bind (anything but loopback exposes the page to the network)",
  },
  data: { type: "string", help: "Fashion-MNIST folder for the test-set samples" },
  "kernel-tests": { type: "bool", help: "also serve the kernel test page /kernel-tests.html" },
} as const;

const USAGE = "fmnist serve --run DIR [--port N]";
const INTRO =
  "Serves a page that classifies dropped PNG/JPEG images and test-set samples in the\n" +
  "browser, on WebGPU with our inference kernel (tfjs's CPU backend where WebGPU is missing).\n" +
  "Only the page, its bundled script and the run's model weights are served. Ctrl-C stops it.";

export async function main(argv: string[]): Promise<void> {
  const f = parseCommandFlags(argv, DEFS, { usage: USAGE, intro: INTRO });
  if (f === null) return;
  if (f.run === undefined) throw new UsageError("give --run DIR (see --help)");
  let server;
  try {
    server = await startServer({
      run: f.run,
      port: f.port,
      hostname: f.host,
      dataDir: f.data,
      kernelTests: f["kernel-tests"],
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`--port ${f.port}: already in use (choose another, or 0 for any)`);
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`--host ${f.host}: not an address of this machine`);
    }
    throw e;
  }
  const stop = () => {
    console.log("serve: stopping");
    server.shutdown();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(`serve: ${server.url} (model from ${f.run}; Ctrl-C stops)`);
  if (!["127.0.0.1", "localhost", "::1"].includes(f.host)) {
    console.log(`serve: bound to ${f.host}: other machines on the network can open the page`);
  }
  if (f["kernel-tests"]) console.log(`serve: kernel tests at ${server.url}kernel-tests.html`);
  await server.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  console.log("serve: stopped");
}
