// max_pool2 — 2x2 / stride-2 `valid` max-pool, forward (src/ops/max_pool2/max_pool2.ts), NHWC:
//   y[n, i, j, c] = max(x[n, 2i + a, 2j + b, c]),  a, b in {0, 1};  Ho = floor(H / 2)
// One invocation per output element (VT = vec4<f32>: 4 channels when C % 4 == 0, else f32;
// the program prepends `alias VT = ...; const VW = 1|4;` and `fn poolScale(i) -> VT`: 1, or the
// dropout multipliers of pooled elements VW*i.. when the op fuses dropout): 4 loads, 1 store.
// The maximum's value does not depend on how ties break; NaN / -Infinity handling is the
// adapter's (WGSL lets implementations assume finite values): the model pools ReLU outputs.
// Bindings: 0 result = y (N, Ho, Wo, C); 1 x (N, H, W, C); uniforms (xShape, outShape).
// Grid: flat, index = ((n * Ho + i) * Wo + j) * (C / VW) + c.

fn main(index : i32) {
  let groups = uniforms.xShape[3] / VW;
  let outH = uniforms.outShape[1];
  let outW = uniforms.outShape[2];
  if (index >= uniforms.outShape[0] * outH * outW * groups) {
    return;
  }
  let c = index % groups;
  let pixel = index / groups;
  let j = pixel % outW;
  let rowIndex = pixel / outW; // n * Ho + i
  let i = rowIndex % outH;
  let n = rowIndex / outH;
  let colStride = groups;
  let rowStride = uniforms.xShape[2] * groups;
  let base = ((n * uniforms.xShape[1] + 2 * i) * uniforms.xShape[2] + 2 * j) * groups + c;
  let top = max(load_x(base), load_x(base + colStride));
  let bottom = max(load_x(base + rowStride), load_x(base + rowStride + colStride));
  result[index] = max(top, bottom) * poolScale(index);
}
