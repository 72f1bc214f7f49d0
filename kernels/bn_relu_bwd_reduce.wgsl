// bn_relu_bwd_reduce — per-channel partial sums of the batch-norm backward (pass 1 of 4).
//
// For every channel c and every chunk of rows (M = N*Ho*Wo rows of Cout channels):
//   partial[p, 0, c] = sum g,   partial[p, 1, c] = sum g * xhat,
//   xhat = (z - mean) * invStd, g = dy * (gamma * xhat + beta > 0).
// sum_partials.wgsl then adds the partials into dbeta and dgamma. Splitting the
// rows over workgroups fills the device (one workgroup per channel block would leave llvmpipe's
// threads idle); no barriers and no atomics: each invocation owns its partial outright.
// The program prepends `alias V = vec4<f32>; const VW : i32 = 4;` when Cout % 4 == 0 (every
// binding is then an array of vec4 and one invocation owns 4 channels), else `alias V = f32;
// const VW : i32 = 1;`. On llvmpipe each load costs about the same whatever its width, so vec4
// cuts this memory-bound pass ~4x.
//
// Bindings (in order): 0 result partials (P*8, 2, Cout) V; 1 dy (M, Cout) V; 2 z (M, Cout) V;
//   3 stats (3, Cout) V mean/var/invStd; 4 gamma (Cout) V; 5 beta (Cout) V; then uniforms
//   (geometry, invM, rowsPerChunk). All bound as flat 1-D views, shapes only in uniforms.
// Grid: workgroup (8, 8): x = 8 adjacent channel groups (of VW channels), y = 8 row lanes;
//   workgroupId.x -> block of 8 channel groups, workgroupId.y -> chunk p of rowsPerChunk rows.
//   Invocation (c, ly) of chunk p sums rows p*rowsPerChunk + ly, + 8, ... and writes partial row
//   p*8 + ly. Groups past Cout read a clamped group and store nothing (keeps control flow
//   uniform within a SIMD row).
// Oracle: bn_relu_bwd_reduce_naive.wgsl (one invocation per channel over all rows).

fn main() {
  let outCV = uniforms.outC / VW;
  let c = i32(workgroupId.x) * 8 + i32(localId.x);
  let cc = min(c, outCV - 1);
  let ly = i32(localId.y);
  let p = i32(workgroupId.y);
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  let r0 = p * uniforms.rowsPerChunk;
  let r1 = min(rows, r0 + uniforms.rowsPerChunk);
  let mean = stats[cc];
  let invStd = stats[2 * outCV + cc];
  let gam = gamma[cc];
  let bet = beta[cc];
  var sumG = V(0.0);
  var sumGX = V(0.0);
  for (var r = r0 + ly; r < r1; r += 8) {
    let i = r * outCV + cc;
    let xhat = (z[i] - mean) * invStd;
    let g = select(V(0.0), dy[i], gam * xhat + bet > V(0.0));
    sumG += g;
    sumGX += g * xhat;
  }
  if (c < outCV) {
    let pr = p * 8 + ly;
    result[(pr * 2) * outCV + c] = sumG;
    result[(pr * 2 + 1) * outCV + c] = sumGX;
  }
}
