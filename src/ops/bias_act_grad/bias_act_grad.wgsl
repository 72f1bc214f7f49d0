// bias_act_grad — the gradient through y = act(z), z = (conv or matmul) + bias[c], in one pass:
//   dz = dy * (y > 0) (relu; linear: dz = dy, not written), dbias[c] = sum over rows of dz.
//
// dy, y, dz are (rows, C) row-major, read as VT = f32 or vec4<f32> (C % 4 == 0; the program
// prepends `alias VT = ...; const VW = 1|4;` and `fn gradAt(i : i32) -> VT`, which loads dy (and
// y), stores dz for relu and returns it), then appends channel_sums.wgsl (the lanes, the sum
// tree and the loop bound: rows <= 960,000; bias_act_grad.ts checks, larger inputs take the
// stock ops). Bindings: outputs dz (relu only) and dbias, inputs dy (and y); uniforms items
// (rows), groups (C / VW).
#include "../wgsl/channel_sums.wgsl"

fn term(row : i32, group : i32) -> VT {
  return gradAt(row * uniforms.groups + group);
}
