// conv_filter_transpose — the filter transposed for the bwdData view: wt[kh, kw, co, ci] =
// w[kh, kw, ci, co], so that 4 adjacent input channels are one vec4 load.
//
// Bindings (in order): 0 result wt (KH*KW*Cout*Cin) f32; 1 w (KH*KW*Cin*Cout) f32; then
//   uniforms (inC, outC, kH, kW). Flat 1-D views.
// Grid: flat, one invocation per element of wt (adjacent lanes write adjacent ci), workgroup 64.

// The bounds check and index split are those of conv_bwd_filter_naive.wgsl.

fn main(index : i32) {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  if (index >= uniforms.kH * uniforms.kW * inC * outC) {
    return;
  }
  let ci = index % inC;
  let co = (index / inC) % outC;
  let tap = index / (inC * outC);
  result[index] = w[(tap * inC + ci) * outC + co];
}
