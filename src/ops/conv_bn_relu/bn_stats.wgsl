// bn_stats — per-chunk partial batch statistics of z for batch norm (training forward, pass 2).
//
// z (M = N*Ho*Wo rows, Cout) is cut into chunks of `rowsPerChunk` rows (src/ops/conv_bn_relu/bn_chunk_grid.ts,
// the grid the apply pass uses too); workgroup (8, 8) of chunk p: x = 8 adjacent channel
// groups, y = 8 row lanes. Lane ly takes a contiguous eighth of the chunk (bn_chunk_rows.wgsl)
// in ONE pass of sums shifted by its first row (d = z - k is of the order of the spread, so
// S2 - S1^2/n does not cancel the way raw sum/sumsq would when |mean| >> std, and z is read
// once), giving its (count, mean, M2);
// then lane 0 merges the 8 lanes in workgroup memory with Chan's formula (bn_moments.wgsl), in
// lane order, and writes the chunk's mean and M2 (its count follows from the uniforms).
// Chunk 0 also copies gamma and beta (and the running statistics) behind the partials, so that
// the apply pass binds 2 inputs and up to 4 outputs: separately they would take 10 storage
// buffers of the 8 a stage may bind.
// History: one invocation per (chunk, channel group) over ~M/64 rows, and a separate finalize
// dispatch (merge of the (P, 3, Cout) partials); the apply pass now merges the partials itself
// (bn_relu_apply.wgsl), measurements in src/ops/conv_bn_relu/conv_bn_relu_fwd.ts. Before that: two passes
// (mean, then squared deviations) read z twice; llvmpipe, batch 128, median of 15 dispatch
// timings in one run: 28x28x32 13.0 -> 8.9 ms, 14x14x64 7.0 -> 7.0 ms.
// VT is f32, or vec4<f32> when Cout % 4 == 0 (4 channels per invocation: on llvmpipe a vec4 load
// costs about what a scalar load does); the program prepends `alias VT = ...; const VW = 1|4;`
// and generates copyParams(c) (the header rows).
//
// Bindings (in order): 0 result = partials (2P + H, Cout) as VT: rows 2p, 2p + 1 mean and M2 of
//   chunk p, then H = 2 or 4 header rows gamma, beta [, movingMean, movingVariance];
//   1 z (M, Cout); 2 gamma; 3 beta [; 4 movingMean; 5 movingVariance] (Cout), all flat VT;
//   uniforms (shapes, rows, outC, rowsPerChunk, chunks : i32).
// Grid: (channel blocks, P) workgroups of (8, 8). Groups past Cout read a clamped group and
// store nothing; no early return before the barrier.
#include "../wgsl/bn_moments.wgsl"
#include "../wgsl/bn_chunk_rows.wgsl"

var<workgroup> laneMean : array<VT, 64>;
var<workgroup> laneM2 : array<VT, 64>;

/** How many rows row lane `lane` takes in chunk `p`. */
fn laneRows(p : i32, lane : i32) -> f32 {
  let range = laneRowRange(p, lane, uniforms.rowsPerChunk, uniforms.rows);
  return f32(range.y - range.x);
}

fn main() {
  let groups = uniforms.outC / VW;
  let lx = i32(localId.x);
  let ly = i32(localId.y);
  let c = i32(workgroupId.x) * 8 + lx;
  let cc = min(c, groups - 1);
  let p = i32(workgroupId.y);
  let range = laneRowRange(p, ly, uniforms.rowsPerChunk, uniforms.rows);
  // Shift by the lane's first row (clamped for a lane without rows: its count is 0).
  let k = load_z(min(range.x, uniforms.rows - 1) * groups + cc);
  var s1 = VT(0.0);
  var s2 = VT(0.0);
  for (var r = range.x + 1; r < range.y; r++) {
    let d = load_z(r * groups + cc) - k;
    s1 += d;
    s2 += d * d;
  }
  let n = max(f32(range.y - range.x), 1.0);
  let shift = s1 / n;
  laneMean[ly * 8 + lx] = k + shift;
  laneM2[ly * 8 + lx] = max(s2 - s1 * shift, VT(0.0));
  workgroupBarrier();
  if (ly == 0 && c < groups) {
    var m = emptyMoments();
    for (var j = 0; j < 8; j++) {
      m = mergeMoments(m, laneRows(p, j), laneMean[j * 8 + lx], laneM2[j * 8 + lx]);
    }
    result[(2 * p) * groups + c] = m.mean;
    result[(2 * p + 1) * groups + c] = m.m2;
    if (p == 0) {
      copyParams(c, 2 * uniforms.chunks * groups, groups);
    }
  }
}
