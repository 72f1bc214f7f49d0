// bn_relu_apply — normalise + scale/shift + ReLU, elementwise (training forward, pass 4):
//   y = relu(gamma[c] * (z - mean[c]) * invStd[c] + beta[c])
//
// VT is f32, or vec4<f32> when Cout % 4 == 0 (then every binding is read as vec4 and c indexes
// groups of 4 channels); the program prepends `alias VT = ...; const VW = 1|4;`. That choice is the only
// compile-time fact in the shader key.
// Bindings (in order): 0 result = y (N,Ho,Wo,Cout); 1 z (N,Ho,Wo,Cout); 2 stats (3, Cout) rows
//   mean / variance / invStd; 3 gamma (Cout); 4 beta (Cout); uniforms (..., size = elements/width).
// Grid: flat, one invocation per VT element, workgroup 64.

fn main(index : i32) {
  if (index >= uniforms.size) {
    return;
  }
  let groups = uniforms.zShape[3] / VW; // channel groups per row
  let c = index % groups;
  let mean = stats[c];
  let invStd = stats[2 * groups + c];
  let v = (z[index] - mean) * invStd * gamma[c] + beta[c];
  result[index] = max(v, VT(0.0));
}
