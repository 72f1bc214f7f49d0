// sum_partials — finalize of a split reduction: adds P partial rows.
//
//   result[i] = sum_{p < numPartials} partials[p * rowLen + offset + i],   i < count
// Used for dbeta (offset 0) and dgamma (offset Cout) from bn_relu_bwd_reduce's
// (P*8, 2, Cout) partials, and for dfilter from the generated bwdFilter view's (S, KH*KW*Cin*Cout)
// partials. Partials are added in a fixed order, so results are deterministic.
//
// Bindings (in order): 0 result (count) f32; 1 partials (flat) f32; then uniforms
//   (numPartials, rowLen, offset, count).
// Grid: flat, one invocation per output element (adjacent lanes read adjacent floats),
//   workgroup 64.

fn main(index : i32) {
  if (index >= uniforms.count) {
    return;
  }
  var acc = 0.0;
  var i = uniforms.offset + index;
  for (var p = 0; p < uniforms.numPartials; p++) {
    acc += partials[i];
    i += uniforms.rowLen;
  }
  result[index] = acc;
}
