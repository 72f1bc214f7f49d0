// Verified, atomic downloads of IDX files.
//
// A download is kept in memory (capped), its digest checked, then written to a temp file in the
// destination folder and renamed into place: a failed, cut-off or mismatched download leaves
// nothing behind. Digests are of the *decompressed* IDX bytes: Debian's dataset-fashion-mnist
// recompresses the upstream .gz files (different gzip bytes, same content), so a digest of the
// content verifies either source.

import { writeFileAtomic } from "../files.ts";
import { concat, DataError, gunzipIdxStream } from "./idx.ts";

export interface RemoteFile {
  /** File name on the mirror and on disk, e.g. "train-labels-idx1-ubyte.gz". */
  name: string;
  /** SHA-256 (hex) of the decompressed IDX bytes. */
  sha256: string;
  /** Upper bound on the download size in bytes (guards against a runaway response). */
  maxBytes: number;
}

/** SHA-256 of bytes as lowercase hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of an IDX file's content: gunzipped first when `name` ends in .gz. */
export async function idxContentSha256(bytes: Uint8Array, name: string): Promise<string> {
  const content = name.endsWith(".gz")
    ? await gunzipIdxStream(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream(), name)
    : bytes;
  return await sha256Hex(content);
}

/** A download that sends nothing for this long is given up (a silent network, not a slow one). */
export const STALL_MS = 30_000;

/** Fetches `url` into memory, refusing more than `maxBytes`. Errors name the URL. */
async function fetchCapped(url: string, maxBytes: number, stallMs: number): Promise<Uint8Array> {
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watchdog = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => abort.abort(new Error(`no data for ${stallMs / 1000} s`)),
      stallMs,
    );
  };
  watchdog();
  try {
    return await readBody(url, maxBytes, abort.signal, watchdog);
  } finally {
    clearTimeout(timer);
  }
}

async function readBody(
  url: string,
  maxBytes: number,
  signal: AbortSignal,
  onData: () => void,
): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (e) {
    throw new DataError(url, `cannot download (${(signal.reason ?? e as Error).message})`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DataError(url, `cannot download (HTTP ${response.status} ${response.statusText})`);
  }
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) {
    await response.body.cancel();
    throw new DataError(url, `download is ${declared} bytes, more than the expected ${maxBytes}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      onData();
      total += chunk.length;
      if (total > maxBytes) {
        throw new DataError(url, `download exceeds the expected ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    const why = (signal.reason ?? e as Error).message;
    throw new DataError(url, `download interrupted after ${total} bytes (${why})`);
  }
  if (Number.isFinite(declared) && total !== declared) {
    throw new DataError(url, `download cut off: got ${total} of ${declared} bytes`);
  }
  return concat(chunks, total);
}

/** Downloads `file` from `mirror` (a base URL) into `dir`, verifying its content digest. */
export async function downloadVerified(
  mirror: string,
  file: RemoteFile,
  dir: string,
  stallMs = STALL_MS,
): Promise<string> {
  const url = new URL(file.name, mirror.endsWith("/") ? mirror : `${mirror}/`).href;
  const bytes = await fetchCapped(url, file.maxBytes, stallMs);
  let digest: string;
  try {
    digest = await idxContentSha256(bytes, file.name);
  } catch (e) {
    throw new DataError(url, `downloaded file is damaged (${(e as Error).message})`);
  }
  if (digest !== file.sha256) {
    throw new DataError(url, `SHA-256 mismatch: got ${digest}, expected ${file.sha256}`);
  }
  const path = `${dir}/${file.name}`;
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(path, bytes);
  return path;
}
