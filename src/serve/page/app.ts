/// <reference lib="dom" />
// The classifier page (served by `deno task serve`): drop/pick an image or step through test-set
// samples; shows the prepared 28x28 input, the top-3 classes with bars, the adapter and the time.
// `window.fmnist` exposes the state for the browser tests (test/browser_page_test.ts).

import { CLASS_NAMES, PIXELS } from "../../data/fashion_mnist.ts";
import { MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE } from "../../eval/image_preprocess.ts";
import {
  type BackendInfo,
  type Classification,
  classify,
  type LoadedModel,
  loadModel,
  MAX_FILE_BYTES,
  prepareImage,
  setDeviceLostHandler,
  startBackend,
} from "./classifier.ts";

interface PageState {
  /** Resolves when the backend and model are ready (rejects with the start-up error). */
  ready: Promise<{ backend: BackendInfo; model: string }>;
  /** The latest classification or error message; `busy` while one runs. */
  last: Classification | null;
  error: string | null;
  busy: boolean;
  /** Resolves when the current (or last) classification has finished. */
  idle: Promise<void>;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const state: PageState = {
  ready: start(),
  last: null,
  error: null,
  busy: false,
  idle: Promise.resolve(),
};
(globalThis as unknown as { fmnist: PageState }).fmnist = state;

let loaded: LoadedModel | null = null;
let samples: { labels: Uint8Array; images: Uint8Array; count: number } | null = null;
let sampleIndex = -1;

async function start() {
  $("limits").textContent = `PNG or JPEG, up to ${MAX_FILE_BYTES / 1024 / 1024} MB and ` +
    `${MAX_IMAGE_SIDE} px per side (${MAX_IMAGE_PIXELS / 1e6} megapixels).`;
  wireInputs();
  setDeviceLostHandler((reason) =>
    showError(`The GPU device was lost (${reason}); reload the page to start again.`)
  );
  try {
    const backend = await startBackend();
    const status = $("backend");
    status.textContent = backend.fallback
      ? `Running on the ${backend.adapter}: ${backend.fallback}. Classification is slower.`
      : `Running on WebGPU: ${backend.adapter}`;
    status.classList.toggle("fallback", backend.fallback !== null);
    loaded = await loadModel(backend.tiles);
    const m = loaded.meta;
    $("model").textContent = `Model: ${m.model} (${m.modelConfig.ops} conv + batch norm + ReLU), ` +
      `saved ${m.savedAt.slice(0, 16).replace("T", " ")}`;
    await loadSamples();
    return { backend, model: m.model };
  } catch (e) {
    showError(`The classifier could not start: ${(e as Error).message}`);
    throw e;
  }
}

async function loadSamples() {
  const res = await fetch("/samples.bin");
  if (!res.ok) {
    $("sample-index").textContent = "not available (no Fashion-MNIST test set on the server)";
    return;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const count = bytes.length / (PIXELS + 1);
  samples = { labels: bytes.subarray(0, count), images: bytes.subarray(count), count };
  for (const id of ["prev", "next"]) $<HTMLButtonElement>(id).disabled = false;
  $("sample-index").textContent = `0 of ${count}`;
}

function wireInputs() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer?.files[0];
    if (file) run(() => fromFile(file));
  });
  $<HTMLInputElement>("file").addEventListener("change", (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) run(() => fromFile(file));
  });
  $("prev").addEventListener("click", () => run(() => fromSample(sampleIndex - 1)));
  $("next").addEventListener("click", () => run(() => fromSample(sampleIndex + 1)));
}

async function fromFile(file: File): Promise<Classification> {
  if (file.size > MAX_FILE_BYTES) {
    throw new Error(
      `${file.name}: ${(file.size / 1024 / 1024).toFixed(1)} MB, over the ` +
        `${MAX_FILE_BYTES / 1024 / 1024} MB limit`,
    );
  }
  const image = await prepareImage(new Uint8Array(await file.arrayBuffer()), file.name);
  return classify(loaded!.model, image);
}

async function fromSample(i: number): Promise<Classification> {
  if (!samples) throw new Error("no test-set samples on this server");
  sampleIndex = ((i % samples.count) + samples.count) % samples.count;
  $("sample-index").textContent = `${sampleIndex} of ${samples.count}`;
  const pixels = samples.images.slice(sampleIndex * PIXELS, (sampleIndex + 1) * PIXELS);
  const truth = CLASS_NAMES[samples.labels[sampleIndex]];
  const r = await classify(loaded!.model, {
    source: `test sample ${sampleIndex} (true class: ${truth})`,
    pixels,
    notes: [],
  });
  return r;
}

/** Runs one classification after start-up; shows its result or its error on the page. */
function run(job: () => Promise<Classification>) {
  state.busy = true;
  state.idle = (async () => {
    try {
      await state.ready;
      const r = await job();
      state.last = r;
      state.error = null;
      showResult(r);
    } catch (e) {
      state.last = null;
      showError((e as Error).message);
    } finally {
      state.busy = false;
    }
  })();
}

function showError(message: string) {
  state.error = message;
  const el = $("error");
  el.textContent = message;
  el.hidden = false;
  $("output").hidden = true;
}

function showResult(r: Classification) {
  $("error").hidden = true;
  $("output").hidden = false;
  const ctx = $<HTMLCanvasElement>("prepared").getContext("2d")!;
  const img = ctx.createImageData(28, 28);
  r.pixels.forEach((v, i) => img.data.set([v, v, v, 255], i * 4));
  ctx.putImageData(img, 0, 0);
  $("source").textContent = r.source;
  const list = $("top");
  list.replaceChildren(
    ...r.ranked.slice(0, 3).map((c) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = c.name;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${Math.max(0.5, c.p * 100).toFixed(1)}%`;
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = `${(c.p * 100).toFixed(1)}%`;
      li.append(name, bar, p);
      return li;
    }),
  );
  $("timing").textContent = `${r.ms.toFixed(1)} ms for this image (forward pass and read-back; ` +
    `the first one also compiles the shaders)`;
  $("notes").textContent = r.notes.length > 0 ? `Preprocessing: ${r.notes.join("; ")}` : "";
}
