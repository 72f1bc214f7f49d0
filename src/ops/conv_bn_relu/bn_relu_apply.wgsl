// bn_relu_apply — batch statistics, normalise + scale/shift + ReLU (training forward, pass 3 of 3
// after the conv): one multi-output dispatch (src/ops/backend/webgpu_multi_output.ts)
//   mean, var = Chan's merge of bn_stats.wgsl's per-chunk partials, invStd = 1/sqrt(var + eps)
//   y = relu(gamma[c] * (z - mean[c]) * invStd[c] + beta[c])
// over the chunked grid of bn_stats (src/ops/conv_bn_relu/bn_chunk_grid.ts): workgroup (8, 8) = 8 channel
// groups x 8 row lanes, workgroupId.y = chunk of rowsPerChunk rows, each row lane a contiguous
// eighth of it (bn_chunk_rows.wgsl).
// Every workgroup merges the P partials of its channel groups itself: lane (x, y) merges chunks
// y, y + 8, ... in order (2 loads each), lane (x, 0) then merges the 8 lanes from workgroup
// memory in lane order (bn_moments.wgsl) and shares mean and gamma * invStd; a fixed order, so
// every workgroup gets the same bits. Chunk 0's lanes write the batch statistics (saved for the
// backward) and, in a training step, the running statistics (generated writeStats, see
// src/ops/conv_bn_relu/conv_bn_relu_fwd.ts). This replaced a separate finalize dispatch (Cout invocations
// merging the partials) between bn_stats and a flat apply pass (16 rows per invocation): one
// dispatch less per BN layer (4 per enhanced step). llvmpipe, batch 128, GPU ms, min of 21:
// 28x28x32 finalize + apply 3.25 -> 3.28 here, 14x14x64 1.84 -> 1.98 (the merge is a larger
// share of a smaller chunk); more in src/ops/conv_bn_relu/conv_bn_relu_fwd.ts.
// (z - mean) * scale, not z * scale + (beta - mean * scale): no cancellation when |mean| >> std.
//
// VT is f32, or vec4<f32> when Cout % 4 == 0 (every binding array<vec4<f32>>, c indexes groups
// of 4 channels); the program prepends `alias VT = ...; const VW = 1|4;`.
// Bindings: outputs y (M, Cout), stats (3, Cout) rows mean / biased variance / invStd
//   [, newMean, newVariance (Cout)]; inputs z (M, Cout), partials (2P + H, Cout) from
//   bn_stats.wgsl (header rows gamma, beta [, movingMean, movingVariance]); uniforms (shapes,
//   rows, outC, rowsPerChunk, chunks, eps [, momentum, oneMinusMomentum]).
// Groups past Cout read a clamped group and store nothing; no early return before a barrier.
#include "../wgsl/bn_moments.wgsl"
#include "../wgsl/bn_chunk_rows.wgsl"

var<workgroup> laneN : array<f32, 8>;
var<workgroup> laneMean : array<VT, 64>;
var<workgroup> laneM2 : array<VT, 64>;
var<workgroup> channelMean : array<VT, 8>;
var<workgroup> channelScale : array<VT, 8>;

fn main() {
  let groups = uniforms.outC / VW;
  let lx = i32(localId.x);
  let ly = i32(localId.y);
  let c = i32(workgroupId.x) * 8 + lx;
  let cc = min(c, groups - 1);
  let per = uniforms.rowsPerChunk;
  var m = emptyMoments();
  for (var p = ly; p < uniforms.chunks; p += 8) {
    let n = f32(min(uniforms.rows, (p + 1) * per) - p * per);
    m = mergeMoments(m, n, partials[(2 * p) * groups + cc], partials[(2 * p + 1) * groups + cc]);
  }
  laneMean[ly * 8 + lx] = m.mean;
  laneM2[ly * 8 + lx] = m.m2;
  if (lx == 0) {
    laneN[ly] = m.n;
  }
  workgroupBarrier();
  let params = 2 * uniforms.chunks * groups;
  if (ly == 0) {
    var s = emptyMoments();
    for (var j = 0; j < 8; j++) {
      s = mergeMoments(s, laneN[j], laneMean[j * 8 + lx], laneM2[j * 8 + lx]);
    }
    let variance = s.m2 / s.n;
    let invStd = 1.0 / sqrt(variance + uniforms.eps);
    channelMean[lx] = s.mean;
    channelScale[lx] = partials[params + cc] * invStd;
    if (workgroupId.y == 0u && c < groups) {
      writeStats(c, s.mean, variance, invStd, params, groups);
    }
  }
  workgroupBarrier();
  if (c >= groups) {
    return;
  }
  let mean = channelMean[lx];
  let scale = channelScale[lx];
  let b = partials[params + groups + c];
  let range = laneRowRange(i32(workgroupId.y), ly, per, uniforms.rows);
  for (var r = range.x; r < range.y; r++) {
    let i = r * groups + c;
    y[i] = max((load_z(i) - mean) * scale + b, VT(0.0));
  }
}
