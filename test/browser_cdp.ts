// Headless Chromium driven over the DevTools protocol, for the browser tests (and the README
// screenshot). `--dump-dom` returns before GPU work finishes, so the tests start Chromium with a
// remote-debugging port, open a page, and evaluate expressions that await the page's own
// "done" promise; console errors and uncaught exceptions are collected.
//
// WebGPU: Debian's chromium (156) headless with --enable-unsafe-webgpu offers the adapter
// `google | swiftshader` (Dawn + Tint on SwiftShader, CPU only). Without that flag the page gets
// no adapter, which is how the tests exercise the CPU fallback.

import { readFlag } from "../src/flags.ts";

export const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or null when Chromium is installed. */
export function chromiumMissing(): string | null {
  try {
    if (Deno.statSync(CHROMIUM).isFile) return null;
    return `${CHROMIUM} is not a file`;
  } catch {
    return `${CHROMIUM} not found (install Debian's chromium or set CHROMIUM)`;
  }
}

export interface ConsoleEntry {
  type: string;
  text: string;
}

interface CdpMessage {
  id?: number;
  method?: string;
  // deno-lint-ignore no-explicit-any
  params?: any;
  // deno-lint-ignore no-explicit-any
  result?: any;
  error?: { message: string };
}

export class Browser {
  /** console.error/warn/... calls and uncaught exceptions, in order. */
  readonly console: ConsoleEntry[] = [];
  private nextId = 0;
  private pending = new Map<number, (m: CdpMessage) => void>();

  private constructor(
    private process: Deno.ChildProcess,
    private ws: WebSocket,
    private profile: string,
  ) {
    ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
  }

  /** Starts headless Chromium; `webgpu` adds --enable-unsafe-webgpu. */
  static async launch(
    opts: { webgpu: boolean; width?: number; height?: number },
  ): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "fmnist-chromium-" });
    const args = [
      "--headless",
      "--no-sandbox",
      "--no-first-run",
      "--disable-extensions",
      "--disable-background-networking",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      `--window-size=${opts.width ?? 1100},${opts.height ?? 800}`,
      ...(opts.webgpu ? ["--enable-unsafe-webgpu"] : ["--disable-features=WebGPU"]),
      "about:blank",
    ];
    const log = readFlag("FMNIST_CHROMIUM_LOG") === "1";
    if (log) args.unshift("--enable-logging=stderr", "--v=0");
    const process = new Deno.Command(CHROMIUM, {
      args,
      stdout: "null",
      stderr: log ? "inherit" : "null",
    }).spawn();
    let port = "";
    for (let i = 0; i < 200 && !port; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        port = (await Deno.readTextFile(`${profile}/DevToolsActivePort`)).split("\n")[0];
      } catch { /* not yet written */ }
    }
    if (!port) {
      process.kill();
      await process.status;
      throw new Error("chromium did not open its DevTools port within 10 s");
    }
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const page = targets.find((t: { type: string }) => t.type === "page");
    const ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const browser = new Browser(process, ws, profile);
    await browser.send("Runtime.enable");
    await browser.send("Page.enable");
    return browser;
  }

  private onMessage(m: CdpMessage) {
    if (m.id !== undefined) {
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    } else if (m.method === "Runtime.consoleAPICalled") {
      // deno-lint-ignore no-explicit-any
      const text = m.params.args.map((a: any) => a.value ?? a.description ?? "").join(" ");
      this.console.push({ type: m.params.type, text });
    } else if (m.method === "Runtime.exceptionThrown") {
      const d = m.params.exceptionDetails;
      this.console.push({ type: "exception", text: d.exception?.description ?? d.text });
    }
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (m) => m.error ? reject(new Error(m.error.message)) : resolve(m.result));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Navigates and waits for the load event. */
  async open(url: string): Promise<void> {
    const loaded = new Promise<void>((resolve) => {
      const prev = this.ws.onmessage;
      this.ws.onmessage = (e) => {
        prev?.call(this.ws, e);
        if (JSON.parse(e.data).method === "Page.loadEventFired") {
          this.ws.onmessage = prev;
          resolve();
        }
      };
    });
    await this.send("Page.navigate", { url });
    await loaded;
  }

  /** Evaluates `expression` in the page, awaiting a promise; returns its JSON value. */
  async eval<T = unknown>(expression: string, timeoutMs = 120_000): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const seen = this.console.map((c) => `${c.type}: ${c.text}`).join("\n");
        reject(new Error(`page: no answer within ${timeoutMs / 1000} s to ${expression}\n${seen}`));
      }, timeoutMs);
    });
    const r = await Promise.race([
      this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }),
      timeout,
    ]).finally(() => clearTimeout(timer));
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`page: ${d.exception?.description ?? d.text}`);
    }
    return r.result.value as T;
  }

  /** Sets the file of an <input type=file> (fires its change event, as a user's pick does). */
  async setInputFile(selector: string, path: string): Promise<void> {
    const { root } = await this.send("DOM.getDocument");
    const { nodeId } = await this.send("DOM.querySelector", { nodeId: root.nodeId, selector });
    if (!nodeId) throw new Error(`page: no element matches ${selector}`);
    await this.send("DOM.setFileInputFiles", { nodeId, files: [path] });
  }

  /** PNG screenshot of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  /** Errors seen so far: console.error calls and uncaught exceptions. */
  errors(): ConsoleEntry[] {
    return this.console.filter((c) => c.type === "error" || c.type === "exception");
  }

  async close(): Promise<void> {
    try {
      await Promise.race([
        this.send("Browser.close"),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
    } catch { /* already gone */ }
    this.ws.close();
    try {
      this.process.kill();
    } catch { /* exited */ }
    await this.process.status;
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}
