// dropout_mask — the counter-based dropout mask (src/ops/dropout/dropout.ts), shared by dropout.wgsl
// and the max-pool kernels that apply dropout to the pooled tensor:
//   dropoutMultiplier(i) = keep(seed, i) ? scale : 0,  scale = 1 / (1 - rate)
// keep(seed, i) = bits(i) >= threshold, bits = hash32(hash32(i ^ key) + key), key = a hash of
// the seed made on the host, threshold = round(rate * 2^32). hash32 is Wellons' "lowbias32"
// integer finaliser; u32 arithmetic wraps in WGSL as Math.imul does in TypeScript, so the CPU
// reference draws the same mask bit for bit. Needs uniforms threshold : u32, scale : f32 and
// the int32 input `dropoutKey` (one element: the key's bits). The key is a tensor, not a
// uniform, so that a step's uniforms are the same bytes every step (src/tf/step_capture.ts
// replays a step and writes only its step inputs).

fn hash32(v : u32) -> u32 {
  var h = v;
  h = h ^ (h >> 16u);
  h = h * 0x7feb352du;
  h = h ^ (h >> 15u);
  h = h * 0x846ca68bu;
  h = h ^ (h >> 16u);
  return h;
}

fn dropoutMultiplier(index : i32) -> f32 {
  let key = bitcast<u32>(dropoutKey[0]);
  let bits = hash32(hash32(u32(index) ^ key) + key);
  return select(0.0, uniforms.scale, bits >= uniforms.threshold);
}
