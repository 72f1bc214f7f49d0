// max_pool2_grad — gradient of the 2x2 / stride-2 `valid` max-pool (src/ops/max_pool2/max_pool2.ts), NHWC:
// each window's dy goes to the window's first maximum (max_pool2_route.wgsl, prepended: the tie
// rule of tfjs-backend-cpu's maxPoolGrad); every other element, and the dropped last row /
// column of an odd H / W, gets 0. The argmax is
// recomputed from the saved input x: no positions tensor, no pass that builds one.
// One invocation per window of the ceil grid (ceil(H / 2) x ceil(W / 2)), VT = vec4<f32> (4
// channels) when C % 4 == 0, else f32: 4 loads of x + 1 of dy, 4 stores, no loop. A window past
// the pooled grid (odd H / W) writes zeros to the elements it has.
// Bindings: 0 result = dx (N, H, W, C); 1 dy (N, Ho, Wo, C); 2 x (N, H, W, C); uniforms.
// Grid: flat, index = ((n * ceil(H / 2) + bi) * ceil(W / 2) + bj) * (C / VW) + c.
#include "../wgsl/max_pool2_route.wgsl"

fn main(index : i32) {
  let groups = uniforms.xShape[3] / VW;
  let inH = uniforms.xShape[1];
  let inW = uniforms.xShape[2];
  let winH = (inH + 1) / 2;
  let winW = (inW + 1) / 2;
  if (index >= uniforms.xShape[0] * winH * winW * groups) {
    return;
  }
  let c = index % groups;
  let win = index / groups;
  let bj = win % winW;
  let rowIndex = win / winW; // n * winH + bi
  let bi = rowIndex % winH;
  let n = rowIndex / winH;
  let colStride = groups;
  let rowStride = inW * groups;
  let i00 = ((n * inH + 2 * bi) * inW + 2 * bj) * groups + c;
  let i01 = i00 + colStride;
  let i10 = i00 + rowStride;
  let i11 = i10 + colStride;
  let zero = VT(0.0);
  let outH = uniforms.dyShape[1];
  let outW = uniforms.dyShape[2];
  if (bi < outH && bj < outW) {
    let p = ((n * outH + bi) * outW + bj) * groups + c;
    let g = load_dy(p) * poolScale(p); // 1, or the dropout mask of a fused dropout
    let r = routeToWinner(load_x(i00), load_x(i01), load_x(i10), load_x(i11), g);
    result[i00] = r[0];
    result[i01] = r[1];
    result[i10] = r[2];
    result[i11] = r[3];
    return;
  }
  // A window cut by the odd last row / column: nothing of it was pooled.
  let hasCol = 2 * bj + 1 < inW;
  let hasRow = 2 * bi + 1 < inH;
  result[i00] = zero;
  if (hasCol) {
    result[i01] = zero;
  }
  if (hasRow) {
    result[i10] = zero;
    if (hasCol) {
      result[i11] = zero;
    }
  }
}
