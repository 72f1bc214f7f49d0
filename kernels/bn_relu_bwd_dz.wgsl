// bn_relu_bwd_dz — materialises dz = dLoss/dz, the batch-norm + ReLU backward (pass 2 of 4).
//
//   dz = gamma * invStd * (g - (dbeta + xhat * dgamma) / M),
//   xhat = (z - mean) * invStd, g = dy * (gamma * xhat + beta > 0).
// dz is written once and read by both convolution backprops (the generated bwdData and bwdFilter views). Computing it
// on the fly there would redo this math, with its 6 loads, at every read (KH*KW times per
// element in dx), and on llvmpipe loads cost as much as the FMAs they feed.
// Like bn_relu_bwd_reduce.wgsl, the program prepends `alias V = vec4<f32>; const VW = 4;`
// when Cout % 4 == 0, else `alias V = f32; const VW = 1;`.
//
// Bindings (in order): 0 result dz (M, Cout) V; 1 dy (M, Cout) V; 2 z (M, Cout) V; 3 stats
//   (3, Cout) V; 4 gamma; 5 beta; 6 dbeta; 7 dgamma (Cout each) V; then uniforms (geometry,
//   invM, rowsPerChunk). Flat 1-D views.
// Grid: as bn_relu_bwd_reduce.wgsl: workgroup (8, 8), x -> 8 adjacent channel groups,
//   y -> row lanes, workgroupId.y -> chunk of rowsPerChunk rows. The per-channel factors are
//   loaded once per invocation and kept in registers.

fn main() {
  let outCV = uniforms.outC / VW;
  let c = i32(workgroupId.x) * 8 + i32(localId.x);
  let cc = min(c, outCV - 1);
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  let r0 = i32(workgroupId.y) * uniforms.rowsPerChunk;
  let r1 = min(rows, r0 + uniforms.rowsPerChunk);
  let mean = stats[cc];
  let invStd = stats[2 * outCV + cc];
  let gam = gamma[cc];
  let bet = beta[cc];
  let k = gam * invStd;
  let a = dbeta[cc] * uniforms.invM;
  let b = dgamma[cc] * uniforms.invM;
  if (c >= outCV) {
    return;
  }
  for (var r = r0 + i32(localId.y); r < r1; r += 8) {
    let i = r * outCV + c;
    let xhat = (z[i] - mean) * invStd;
    let g = select(V(0.0), dy[i], gam * xhat + bet > V(0.0));
    result[i] = k * (g - a - xhat * b);
  }
}
