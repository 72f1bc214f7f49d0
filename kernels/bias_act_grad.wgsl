// bias_act_grad — the gradient through y = act(z), z = (conv or matmul) + bias[c], in one pass:
//   dz = dy * (y > 0) (relu; linear: dz = dy, not written), dbias[c] = sum over rows of dz.
//
// dy, y, dz are (rows, C) row-major, read as VT = f32 or vec4<f32> (C % 4 == 0; the program
// prepends `alias VT = ...; const VW = 1|4;` and `fn gradAt(i : i32) -> VT`, which loads dy (and
// y), stores dz for relu and returns it). One workgroup of 64 owns a tile of CHANNEL_LANES
// channel groups (VW channels each) over all rows: its ROW_LANES row lanes stride the rows, then
// a fixed-order tree in workgroup memory sums their partials (deterministic, no second pass).
// Loop bound: ceil(rows / ROW_LANES) iterations per invocation, < llvmpipe's 65,535 for rows up
// to 960,000 (bias_act_grad.ts checks; larger inputs take the stock ops).
// Bindings: outputs dz (relu only) and dbias, inputs dy (and y); uniforms rows, groups (C / VW).

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
    for (var r = rowLane; r < uniforms.rows; r += ROW_LANES) {
      s += gradAt(r * uniforms.groups + g);
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
