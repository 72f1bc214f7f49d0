// channel_sums — the shared main of the one-pass "elementwise gradient + per-channel sum"
// kernels (bias_act_grad.wgsl, max_pool2_relu_bias_grad.wgsl). The including kernel defines
// `fn term(item : i32, group : i32) -> VT`: it does the elementwise work of one item (a row, or a
// pool window) of channel group `group`, writes what it must, and returns the item's
// contribution to that group's sum, which lands in `dbias`. Uniforms: items, groups.
// One workgroup of 64 owns CHANNEL_LANES channel groups (VW channels each) over all items: its
// ROW_LANES lanes stride the items, then a fixed-order tree in workgroup memory sums their
// partials (deterministic, no second pass). Loop bound: ceil(items / ROW_LANES) iterations per
// invocation, under llvmpipe's 65,535 for up to 960,000 items (the ops check).

const CHANNEL_LANES = 4;
const ROW_LANES = 16;

var<workgroup> laneSums : array<VT, 64>;

fn main(index : i32) {
  let local = index % 64;
  let lane = local % CHANNEL_LANES;
  let rowLane = local / CHANNEL_LANES;
  let g = (index / 64) * CHANNEL_LANES + lane;
  var s = VT(0.0);
  if (g < uniforms.groups) {
    for (var item = rowLane; item < uniforms.items; item += ROW_LANES) {
      s += term(item, g);
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
  if (rowLane == 0 && g < uniforms.groups) {
    dbias[g] = laneSums[local];
  }
}
