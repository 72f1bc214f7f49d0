// max_pool2_relu_bias_grad — the backward of relu(z + bias) -> 2x2 / stride-2 `valid` max-pool
// in one pass (src/ops/conv_bias_relu_pool2/conv_bias_relu_pool2.ts): from the pooled gradient dy and the saved
// ReLU output y (N, H, W, C),
//   dz   = each window's dy routed to its first maximum (max_pool2_route.wgsl, the tie rule of
//          max_pool2_grad.wgsl and tfjs-backend-cpu's maxPoolGrad), masked by y > 0 there (the
//          ReLU's gradient; the winner's y is the window maximum, so a window whose maximum is
//          not > 0 routes nothing); 0 elsewhere, and on the odd last row / column;
//   dbias[c] = sum of dz over N, H, W = sum over windows of the masked dy.
// VT is f32, or vec4<f32> when C % 4 == 0 (the program prepends `alias VT = ...; const VW`
// and max_pool2_route.wgsl, and appends channel_sums.wgsl: items are the windows of the ceil
// grid, ceil(H / 2) x ceil(W / 2) per image, at most 960,000; the op checks and beyond runs
// the two separate kernels). Bindings: outputs dz (N, H, W, C), dbias (C); inputs dy
// (N, Ho, Wo, C), y; uniforms items (windows), groups (C / VW), inH, inW, outH, outW.
#include "../wgsl/max_pool2_route.wgsl"
#include "../wgsl/channel_sums.wgsl"

/** Routes window `win`'s masked gradient to dz; returns it (0 for a window past the grid). */
fn term(win : i32, c : i32) -> VT {
  let groups = uniforms.groups;
  let winW = (uniforms.inW + 1) / 2;
  let winH = (uniforms.inH + 1) / 2;
  let bj = win % winW;
  let rowIndex = win / winW; // n * winH + bi
  let bi = rowIndex % winH;
  let n = rowIndex / winH;
  let colStride = groups;
  let rowStride = uniforms.inW * groups;
  let i00 = ((n * uniforms.inH + 2 * bi) * uniforms.inW + 2 * bj) * groups + c;
  let i01 = i00 + colStride;
  let i10 = i00 + rowStride;
  let i11 = i10 + colStride;
  let zero = VT(0.0);
  if (bi < uniforms.outH && bj < uniforms.outW) {
    let a = load_y(i00);
    let b = load_y(i01);
    let d = load_y(i10);
    let e = load_y(i11);
    let pooled = load_dy(((n * uniforms.outH + bi) * uniforms.outW + bj) * groups + c);
    let g = select(zero, pooled, max(max(a, b), max(d, e)) > zero);
    let r = routeToWinner(a, b, d, e, g);
    dz[i00] = r[0];
    dz[i01] = r[1];
    dz[i10] = r[2];
    dz[i11] = r[3];
    return g;
  }
  // A window cut by the odd last row / column: nothing of it was pooled.
  let hasCol = 2 * bj + 1 < uniforms.inW;
  let hasRow = 2 * bi + 1 < uniforms.inH;
  dz[i00] = zero;
  if (hasCol) {
    dz[i01] = zero;
  }
  if (hasRow) {
    dz[i10] = zero;
    if (hasCol) {
      dz[i11] = zero;
    }
  }
  return zero;
}
