// Declared-size limits of the shared preprocessing (predict and the page): a PNG or JPEG header
// that declares too many pixels is refused before any decoding.

import assert from "node:assert/strict";
import { UsageError } from "../src/errors.ts";
import {
  checkDeclaredSize,
  jpegDimensions,
  MAX_IMAGE_PIXELS,
  MAX_IMAGE_SIDE,
  pngDimensions,
} from "../src/eval/image_preprocess.ts";
import { loadImageFile } from "../src/eval/image_input.ts";
import { greyPng, pngDeclaring } from "./browser_fixtures.ts";

/** SOI, an APP0 segment, then a baseline SOF0 declaring width x height. */
function jpegHeader(width: number, height: number): Uint8Array {
  const app0 = [0xff, 0xe0, 0x00, 0x06, 0x4a, 0x46, 0x49, 0x46];
  const sof0 = [0xff, 0xc0, 0x00, 0x0b, 8, height >> 8, height & 255, width >> 8, width & 255, 1];
  return Uint8Array.from([0xff, 0xd8, ...app0, ...sof0, 1, 0x11, 0]);
}

Deno.test("image limits: header dimensions, the limit's edges, predict refuses a PNG bomb", async () => {
  assert.deepEqual(pngDimensions(pngDeclaring(30000, 20)), { width: 30000, height: 20 });
  assert.deepEqual(jpegDimensions(jpegHeader(640, 480)), { width: 640, height: 480 });
  assert.equal(jpegDimensions(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0, 2])), null);
  checkDeclaredSize(MAX_IMAGE_SIDE, Math.floor(MAX_IMAGE_PIXELS / MAX_IMAGE_SIDE), "ok.png");
  assert.throws(
    () => checkDeclaredSize(MAX_IMAGE_SIDE + 1, 1, "wide.png"),
    /wide.png: image declares 8193x1/,
  );
  assert.throws(() => checkDeclaredSize(8000, 8000, "big.jpg"), /over the limit/);
  assert.throws(() => checkDeclaredSize(0, 5, "empty.png"), /empty size/);

  const dir = await Deno.makeTempDir({ prefix: "fmnist-limits-" });
  try {
    // 30000 x 30000 declared: predict used to take 26 s and 7 GB on this; now refused at once.
    const bomb = `${dir}/bomb.png`;
    await Deno.writeFile(bomb, pngDeclaring(30000, 30000));
    await assert.rejects(
      loadImageFile(bomb),
      (e) =>
        e instanceof UsageError && /bomb\.png: image declares 30000x30000 pixels/.test(e.message),
    );
    const fine = `${dir}/fine.png`;
    await Deno.writeFile(fine, greyPng(40, 30, new Uint8Array(1200).fill(200)));
    const [img] = await loadImageFile(fine);
    assert.equal(img.pixels.length, 28 * 28);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
