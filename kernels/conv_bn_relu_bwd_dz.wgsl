// conv_bn_relu_bwd_dz — materialises dz = dLoss/dz, the batch-norm + ReLU backward (pass 2 of 4).
//
//   dz = gamma * invStd * (g - (dbeta + xhat * dgamma) / M),
//   xhat = (z - mean) * invStd, g = dy * (gamma * xhat + beta > 0).
// dz is written once and read by both convolution backprops (bwd_data, bwd_weight). Computing it
// on the fly there instead would redo this per-element math KH*KW times (dx gathers every dz
// element once per tap) or once per filter-row block (dfilter), where the loads are the
// bottleneck; one extra M*Cout write + reads is cheaper (see bench/conv_bn_relu_bwd_probe.ts).
//
// Bindings (in order): 0 result dz (M, Cout) f32; 1 dy (M, Cout); 2 z (M, Cout); 3 stats
//   (3, Cout); 4 gamma; 5 beta; 6 dbeta; 7 dgamma (Cout each); then uniforms (geometry, invM,
//   rowsPerChunk). Flat 1-D views.
// Grid: as conv_bn_relu_bwd_reduce.wgsl: workgroup (8, 8), x -> 8 adjacent channels, y -> row
//   lanes, workgroupId.y -> chunk of rowsPerChunk rows. The per-channel factors are loaded once
//   per invocation and kept in registers.

fn main() {
  let outC = uniforms.outC;
  let c = i32(workgroupId.x) * 8 + i32(localId.x);
  let cc = min(c, outC - 1);
  let rows = uniforms.batch * uniforms.outH * uniforms.outW;
  let r0 = i32(workgroupId.y) * uniforms.rowsPerChunk;
  let r1 = min(rows, r0 + uniforms.rowsPerChunk);
  let mean = stats[cc];
  let invStd = stats[2 * outC + cc];
  let gam = gamma[cc];
  let bet = beta[cc];
  let k = gam * invStd;
  let a = dbeta[cc] * uniforms.invM;
  let b = dgamma[cc] * uniforms.invM;
  if (c >= outC) {
    return;
  }
  for (var r = r0 + i32(localId.y); r < r1; r += 8) {
    let i = r * outC + c;
    let xhat = (z[i] - mean) * invStd;
    let g = select(0.0, dy[i], gam * xhat + bet > 0.0);
    result[i] = k * (g - a - xhat * b);
  }
}
