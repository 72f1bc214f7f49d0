// bn_relu_bwd_sums — finalize of the batch-norm backward's split reduction for a layer without a
// dz pass (the model-input layer: its bwdFilter pass computes dz as it loads it): dbeta and dgamma
// of every channel from bn_relu_bwd_reduce's partials (rows 4 + 2p: sum g, 5 + 2p: sum g * xhat),
// in one dispatch (a multi-output program, src/ops/backend/webgpu_multi_output.ts):
//   dbeta[c] = sum_p partials[4 + 2p, c],   dgamma[c] = sum_p partials[5 + 2p, c]
// Partials are added in a fixed order (p ascending), so results are deterministic. Layers with a
// dz pass merge the partials there instead (bn_relu_bwd_dz.wgsl: one dispatch less each).
//
// The program generates main(): channelSums, then dbeta/dgamma and the packed terms of
// bn_relu_bwd_terms.wgsl from the same sums (no dispatch of their own).
// Bindings: 0 dbeta (Cout), 1 dgamma (Cout), 2 terms (7, Cout), then partials (4 + 2P, Cout)
// f32; uniforms: size = Cout, numPartials, invM. Grid: one invocation per channel, P iterations
// each (P ~ 64 / channel blocks).

/** (dbeta, dgamma) of channel c. */
fn channelSums(c : i32) -> vec2<f32> {
  let outC = uniforms.size;
  var sumG = 0.0;
  var sumGXhat = 0.0;
  var i = 4 * outC + c;
  for (var p = 0; p < uniforms.numPartials; p++) {
    sumG += partials[i];
    sumGXhat += partials[i + outC];
    i += 2 * outC;
  }
  return vec2<f32>(sumG, sumGXhat);
}
