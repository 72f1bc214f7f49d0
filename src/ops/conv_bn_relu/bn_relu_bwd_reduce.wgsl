// bn_relu_bwd_reduce — per-channel partial sums of the batch-norm backward (pass 1 of 4).
//
// For every channel c and every chunk p of rows (M = N*Ho*Wo rows of Cout channels):
//   partial[4 + 2p, c] = sum g,   partial[5 + 2p, c] = sum g * xhat,
//   xhat = (z - mean) * invStd, g = dy * (gamma * xhat + beta > 0).
// The dz pass (bn_relu_bwd_dz.wgsl) merges the partials into dbeta and dgamma itself, in every
// workgroup (bn_relu_bwd_sums.wgsl does for the model-input layer, which has no dz pass).
// Splitting the rows over workgroups fills the device (one workgroup per channel block would
// leave llvmpipe's threads idle); no atomics. The 8 row lanes of a chunk add their sums in
// workgroup memory in a fixed order (lane 0 + 1 + ... + 7), so one partial row per chunk
// reaches memory: P rows instead of P*8, which keeps the dz pass's per-workgroup merge to
// 2*P/8 loads per invocation (measurements in bn_relu_bwd_dz.wgsl).
// The program prepends `alias V = vec4<f32>; const VW : i32 = 4;` when Cout % 4 == 0 (every
// binding is then an array of vec4 and one invocation owns 4 channels), else `alias V = f32;
// const VW : i32 = 1;`. On llvmpipe each load costs about the same whatever its width, so vec4
// cuts this memory-bound pass ~4x.
//
// The output also carries the per-channel factors the later passes need (rows 0-3: mean,
// invStd, gamma, beta, written by chunk 0), so that the dz pass binds 3 inputs and 3 outputs,
// within the 8 storage buffers a stage may bind (with stats, gamma and beta apart it took 9).
// Bindings (in order): 0 result partials (4 + 2P, Cout) V: rows 0-3 mean / invStd / gamma /
//   beta, rows 4 + 2p and 5 + 2p sum g and sum g * xhat of chunk p; 1 dy (M, Cout) V;
//   2 z (M, Cout) V; 3 stats (3, Cout) V mean/var/invStd; 4 gamma (Cout) V; 5 beta (Cout) V;
//   then uniforms (geometry, invM, rowsPerChunk). All bound as flat 1-D views, shapes only in
//   uniforms.
// Grid: workgroup (8, 8): x = 8 adjacent channel groups (of VW channels), y = 8 row lanes;
//   workgroupId.x -> block of 8 channel groups, workgroupId.y -> chunk p of rowsPerChunk rows.
//   Invocation (c, ly) of chunk p sums a contiguous eighth of the chunk's rows
//   (bn_chunk_rows.wgsl); lane (c, 0) writes partial row p. Groups past Cout read a clamped
//   group and store nothing (no early return: every invocation reaches the barrier).
// Oracle: bn_relu_bwd_reduce_naive.wgsl (one invocation per channel over all rows).
#include "../wgsl/bn_chunk_rows.wgsl"

var<workgroup> laneG : array<V, 64>;
var<workgroup> laneGX : array<V, 64>;

fn main() {
  let outCV = uniforms.outC / VW;
  let c = i32(workgroupId.x) * 8 + i32(localId.x);
  let cc = min(c, outCV - 1);
  let ly = i32(localId.y);
  let p = i32(workgroupId.y);
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  let mean = stats[cc];
  let invStd = stats[2 * outCV + cc];
  let gam = gamma[cc];
  let bet = beta[cc];
  var sumG = V(0.0);
  var sumGX = V(0.0);
  let range = laneRowRange(p, ly, uniforms.rowsPerChunk, rows);
  for (var r = range.x; r < range.y; r++) {
    let i = r * outCV + cc;
    let xhat = (load_z(i) - mean) * invStd;
    let g = select(V(0.0), load_dy(i), gam * xhat + bet > V(0.0));
    sumG += g;
    sumGX += g * xhat;
  }
  let lx = i32(localId.x);
  laneG[ly * 8 + lx] = sumG;
  laneGX[ly * 8 + lx] = sumGX;
  workgroupBarrier();
  if (ly == 0 && c < outCV) {
    var g = laneG[lx];
    var gx = laneGX[lx];
    for (var k = 1; k < 8; k++) {
      g += laneG[k * 8 + lx];
      gx += laneGX[k * 8 + lx];
    }
    result[(4 + p * 2) * outCV + c] = g;
    result[(5 + p * 2) * outCV + c] = gx;
    if (p == 0) {
      result[c] = mean;
      result[outCV + c] = invStd;
      result[2 * outCV + c] = gam;
      result[3 * outCV + c] = bet;
    }
  }
}
