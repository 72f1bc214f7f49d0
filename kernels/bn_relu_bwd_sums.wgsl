// bn_relu_bwd_sums — finalize of the batch-norm backward's split reduction: dbeta and dgamma of
// every channel from bn_relu_bwd_reduce's (P*8, 2, Cout) partials (rows: sum g, sum g * xhat),
// in one dispatch (a multi-output program, src/ops/webgpu_multi_output.ts):
//   dbeta[c] = sum_p partials[p, 0, c],   dgamma[c] = sum_p partials[p, 1, c]
// Partials are added in a fixed order (p ascending, as sum_partials.wgsl does), so results are
// deterministic and the same as two sum_partials dispatches would give.
//
// The program generates main(): channelSums, then dbeta/dgamma (and, for a layer without dx,
// the packed terms of bn_relu_bwd_terms.wgsl from the same sums: no dispatch of their own).
// Bindings: 0 dbeta (Cout), 1 dgamma (Cout) [, 2 terms (7, Cout)], then partials (flat) f32
// [, stats, gamma, beta]; uniforms: size = Cout, numPartials [, invM]. Grid: one invocation per
// channel (P <= 512 iterations each).

/** (dbeta, dgamma) of channel c. */
fn channelSums(c : i32) -> vec2<f32> {
  let outC = uniforms.size;
  var sumG = 0.0;
  var sumGXhat = 0.0;
  var i = c;
  for (var p = 0; p < uniforms.numPartials; p++) {
    sumG += partials[i];
    sumGXhat += partials[i + outC];
    i += 2 * outC;
  }
  return vec2<f32>(sumG, sumGXhat);
}
