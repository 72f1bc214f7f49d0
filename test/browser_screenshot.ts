// Regenerates the README screenshot of the classifier page:
//   deno run -A test/browser_screenshot.ts --run runs/<run> [--sample N] [--out docs/serve-page.png]
// Starts the server, opens the page in headless Chromium (WebGPU), classifies test-set sample N
// and saves the viewport as PNG.

import { parseArgs } from "node:util";
import { startServer } from "../src/serve/server.ts";
import { Browser } from "./browser_cdp.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    run: { type: "string" },
    sample: { type: "string", default: "0" },
    out: { type: "string", default: "docs/serve-page.png" },
  },
});
if (!values.run) throw new Error("give --run DIR");
const server = await startServer({ run: values.run, port: 0 });
const b = await Browser.launch({ webgpu: true });
try {
  await b.send("Emulation.setDeviceMetricsOverride", {
    width: 960,
    height: 400,
    deviceScaleFactor: 1,
    mobile: false,
  });
  await b.open(server.url);
  await b.eval("fmnist.ready");
  const target = Number(values.sample);
  const click = (id: string) =>
    b.eval(`(async () => { document.getElementById("${id}").click(); await fmnist.idle; })()`);
  for (let i = 0; i <= target; i++) await click("next");
  // Once more (away and back), so the time shown is not the first call's shader compilation.
  await click("prev");
  await click("next");
  const error = await b.eval<string | null>("fmnist.error");
  if (error) throw new Error(error);
  await Deno.writeFile(values.out!, await b.screenshot());
  console.log(`wrote ${values.out}`);
} finally {
  await b.close();
  await server.shutdown();
}
