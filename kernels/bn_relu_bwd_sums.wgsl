// bn_relu_bwd_sums — finalize of the batch-norm backward's split reduction: dbeta and dgamma of
// every channel from bn_relu_bwd_reduce's (P*8, 2, Cout) partials (rows: sum g, sum g * xhat),
// in one dispatch (a multi-output program, src/ops/webgpu_multi_output.ts):
//   dbeta[c] = sum_p partials[p, 0, c],   dgamma[c] = sum_p partials[p, 1, c]
// Partials are added in a fixed order (p ascending, as sum_partials.wgsl does), so results are
// deterministic and the same as two sum_partials dispatches would give.
//
// Bindings: 0 dbeta (Cout), 1 dgamma (Cout), 2 partials (flat) f32; uniforms: size = Cout,
// numPartials. Grid: one invocation per channel (P <= 512 iterations each).

fn main(c : i32) {
  let outC = uniforms.size;
  var sumG = 0.0;
  var sumGXhat = 0.0;
  var i = c;
  for (var p = 0; p < uniforms.numPartials; p++) {
    sumG += partials[i];
    sumGXhat += partials[i + outC];
    i += 2 * outC;
  }
  dbeta[c] = sumG;
  dgamma[c] = sumGXhat;
}
