// Verified, atomic downloads of IDX files.
//
// A download is kept in memory (capped), its digest checked, then written to a temp file in the
// destination folder and renamed into place: a failed, cut-off or mismatched download leaves
// nothing behind. Digests are of the *decompressed* IDX bytes: Debian's dataset-fashion-mnist
// recompresses the upstream .gz files (different gzip bytes, same content), so a digest of the
// content verifies either source.

import { DataError, gunzipIdxStream, writeFileAtomic } from "./idx.ts";

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

/** Fetches `url` into memory, refusing more than `maxBytes`. Errors name the URL. */
async function fetchCapped(url: string, maxBytes: number): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new DataError(url, `download failed (${(e as Error).message})`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DataError(url, `download failed (HTTP ${response.status} ${response.statusText})`);
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
      total += chunk.length;
      if (total > maxBytes) {
        throw new DataError(url, `download exceeds the expected ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(url, `download interrupted after ${total} bytes (${(e as Error).message})`);
  }
  if (Number.isFinite(declared) && total !== declared) {
    throw new DataError(url, `download cut off: got ${total} of ${declared} bytes`);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Downloads `file` from `mirror` (a base URL) into `dir`, verifying its content digest. */
export async function downloadVerified(
  mirror: string,
  file: RemoteFile,
  dir: string,
): Promise<string> {
  const url = new URL(file.name, mirror.endsWith("/") ? mirror : `${mirror}/`).href;
  const bytes = await fetchCapped(url, file.maxBytes);
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
