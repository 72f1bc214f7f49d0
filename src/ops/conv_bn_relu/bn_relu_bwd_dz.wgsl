// bn_relu_bwd_dz — dbeta, dgamma and dz = dLoss/dz of the batch-norm + ReLU backward (pass 2 of
// 4), one multi-output dispatch (src/ops/backend/webgpu_multi_output.ts):
//
//   dbeta = sum_M g,   dgamma = sum_M g * xhat      (from bn_relu_bwd_reduce's partials)
//   dz = gamma * invStd * (g - (dbeta + xhat * dgamma) / M),
//   xhat = (z - mean) * invStd, g = dy * (gamma * xhat + beta > 0).
// dz is written once and read by both convolution backprops (the generated bwdData and bwdFilter
// views). Computing it on the fly there would redo this math, with its 6 loads, at every read
// (KH*KW times per element in dx), and on llvmpipe loads cost as much as the FMAs they feed.
//
// Every workgroup first merges the P partial rows of its 8 channel groups itself (lane (x, y)
// adds partials y, y+8, ... in order; then each lane adds the 8 lanes' sums of its channel
// group from workgroup memory, lane 0 first): a fixed order, so every workgroup gets the same
// bits and runs are deterministic. Row chunk 0 writes dbeta and dgamma. This replaced a separate
// sums dispatch (BnReluBwdSums) between the reduce and this pass: one dispatch less per layer
// with dz, 3 per enhanced step (bench/dispatches.ts). The merge costs 2*P/8 extra loads per
// invocation beside the ~2*rowsPerChunk/8 of the dz loop; P is one row per reduce chunk (the
// reduce adds its 8 row lanes in workgroup memory; P*8 rows before, which would have made this
// merge 8x larger: measured 5.2 vs 4.4 ms at batch 128, 28x28x32, llvmpipe). Measurements:
// src/ops/conv_bn_relu/conv_bn_relu_bwd.ts.
//
// Like bn_relu_bwd_reduce.wgsl, the program prepends `alias V = vec4<f32>; const VW = 4;`
// when Cout % 4 == 0 (every binding then array<vec4<f32>>), else `alias V = f32; const VW = 1;`.
// Bindings: outputs dz (M, Cout), dbeta, dgamma (Cout); inputs dy (M, Cout), z (M, Cout),
//   partials (4 + 2P, Cout): rows mean / invStd / gamma / beta, then sum g / sum g*xhat per
//   chunk (bn_relu_bwd_reduce.wgsl); uniforms (geometry, invM, rowsPerChunk, numPartials). Flat
//   1-D views.
// Grid: as bn_relu_bwd_reduce.wgsl: workgroup (8, 8), x -> 8 adjacent channel groups,
//   y -> row lanes (a contiguous eighth of the chunk each, bn_chunk_rows.wgsl), workgroupId.y ->
//   chunk of rowsPerChunk rows. The per-channel factors are
//   loaded once per invocation and kept in registers. Groups past Cout read a clamped group and
//   store nothing; no early return before the barrier.
#include "../wgsl/bn_chunk_rows.wgsl"

var<workgroup> laneG : array<V, 64>;
var<workgroup> laneGX : array<V, 64>;

fn main() {
  let outCV = uniforms.outC / VW;
  let lx = i32(localId.x);
  let ly = i32(localId.y);
  let c = i32(workgroupId.x) * 8 + lx;
  let cc = min(c, outCV - 1);
  var partG = V(0.0);
  var partGX = V(0.0);
  for (var p = ly; p < uniforms.numPartials; p += 8) {
    partG += partials[(4 + p * 2) * outCV + cc];
    partGX += partials[(5 + p * 2) * outCV + cc];
  }
  laneG[ly * 8 + lx] = partG;
  laneGX[ly * 8 + lx] = partGX;
  workgroupBarrier();
  var sumG = laneG[lx];
  var sumGX = laneGX[lx];
  for (var k = 1; k < 8; k++) {
    sumG += laneG[k * 8 + lx];
    sumGX += laneGX[k * 8 + lx];
  }
  if (c >= outCV) {
    return;
  }
  if (workgroupId.y == 0u && ly == 0) {
    dbeta[c] = sumG;
    dgamma[c] = sumGX;
  }
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  let mean = partials[cc];
  let invStd = partials[outCV + cc];
  let gam = partials[2 * outCV + cc];
  let bet = partials[3 * outCV + cc];
  let k = gam * invStd;
  let a = sumG * uniforms.invM;
  let b = sumGX * uniforms.invM;
  let range = laneRowRange(i32(workgroupId.y), ly, uniforms.rowsPerChunk, rows);
  for (var r = range.x; r < range.y; r++) {
    let i = r * outCV + c;
    let xhat = (load_z(i) - mean) * invStd;
    let g = select(V(0.0), load_dy(i), gam * xhat + bet > V(0.0));
    dz[i] = k * (g - a - xhat * b);
  }
}
