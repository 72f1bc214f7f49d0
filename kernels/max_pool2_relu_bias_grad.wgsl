// max_pool2_relu_bias_grad — the backward of relu(z + bias) -> 2x2 / stride-2 `valid` max-pool
// in one pass (src/ops/conv_bias_relu_pool2.ts): from the pooled gradient dy and the saved
// ReLU output y (N, H, W, C),
//   dz   = each window's dy routed to its first maximum (row-major scan, strict `>`, as
//          max_pool2_grad.wgsl and tfjs-backend-cpu's maxPoolGrad), masked by y > 0 there (the
//          ReLU's gradient; the winner's y is the window maximum, so a window whose maximum is
//          not > 0 routes nothing); 0 elsewhere, and on the odd last row / column;
//   dbias[c] = sum of dz over N, H, W = sum over windows of the masked dy.
// VT is f32, or vec4<f32> when C % 4 == 0 (the program prepends `alias VT = ...; const VW`).
// One workgroup of 64 owns CHANNEL_LANES channel groups (VW channels each) over all windows of
// the ceil grid (ceil(H / 2) x ceil(W / 2) per image): its ROW_LANES lanes stride the windows,
// then a fixed-order tree in workgroup memory sums their partials (deterministic, no second
// pass). Loop bound: ceil(windows / ROW_LANES) iterations per invocation, under llvmpipe's
// 65,535 for up to 960,000 windows (the op checks; beyond, it runs the two separate kernels).
// Bindings: outputs dz (N, H, W, C), dbias (C); inputs dy (N, Ho, Wo, C), y; uniforms below.

const CHANNEL_LANES = 4;
const ROW_LANES = 16;

var<workgroup> laneSums : array<VT, 64>;

/** Routes window `win`'s masked gradient to dz; returns it (0 for a window past the grid). */
fn routeWindow(win : i32, c : i32) -> VT {
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
    let a = y[i00];
    let b = y[i01];
    let d = y[i10];
    let e = y[i11];
    // Running maximum in scan order; tN: element N beats every element before it.
    let t1 = b > a;
    let m1 = select(a, b, t1);
    let t2 = d > m1;
    let m2 = select(m1, d, t2);
    let t3 = e > m2;
    let m3 = select(m2, e, t3);
    let g = select(zero, dy[((n * uniforms.outH + bi) * uniforms.outW + bj) * groups + c], m3 > zero);
    // The winner is the last element that beat its predecessors.
    dz[i00] = select(g, zero, t1 | t2 | t3);
    dz[i01] = select(zero, g, t1 & !(t2 | t3));
    dz[i10] = select(zero, g, t2 & !t3);
    dz[i11] = select(zero, g, t3);
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

fn main(index : i32) {
  let local = index % 64;
  let lane = local % CHANNEL_LANES;
  let rowLane = local / CHANNEL_LANES;
  let c = (index / 64) * CHANNEL_LANES + lane;
  var s = VT(0.0);
  if (c < uniforms.groups) {
    for (var w = rowLane; w < uniforms.windows; w += ROW_LANES) {
      s += routeWindow(w, c);
    }
  }
  laneSums[local] = s;
  workgroupBarrier();
  for (var half = ROW_LANES / 2; half > 0; half /= 2) {
    if (rowLane < half) {
      laneSums[local] += laneSums[local + half * CHANNEL_LANES];
    }
    workgroupBarrier();
  }
  if (rowLane == 0 && c < uniforms.groups) {
    dbias[c] = laneSums[local];
  }
}
