// conv_bwd_filter_naive — naive dfilter = conv2d backprop-filter of (x, dz), one weight per
// invocation.
//
// The oracle of the generated bwdFilter view (src/ops/conv/gemm_wgsl.ts), selected by the
// FMNIST_NAIVE_KERNELS flag. One invocation loops over all M = N*Ho*Wo output pixels, skipping
// taps in the zero padding. Test shapes only: on llvmpipe a loop stops silently after 65,535
// iterations, so past M ~ 65k this kernel is wrong there (the generated one splits M).
//
// Bindings (in order): 0 result dfilter (KH*KW*Cin*Cout) f32; 1 dz (N*Ho*Wo*Cout) f32;
//   2 x (N,H,W,Cin) f32; then uniforms (geometry). Flat 1-D views.
// Grid: flat, one invocation per weight, workgroup 64.

fn main(index : i32) {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  if (index >= uniforms.kH * uniforms.kW * inC * outC) {
    return;
  }
  let co = index % outC;
  let ci = (index / outC) % inC;
  let kw = (index / (outC * inC)) % uniforms.kW;
  let kh = index / (outC * inC * uniforms.kW);
  var acc = 0.0;
  for (var n = 0; n < uniforms.batch; n++) {
    for (var oh = 0; oh < uniforms.outH; oh++) {
      let ih = oh * uniforms.strideH - uniforms.padTop + kh;
      if (ih < 0 || ih >= uniforms.inH) {
        continue;
      }
      for (var ow = 0; ow < uniforms.outW; ow++) {
        let iw = ow * uniforms.strideW - uniforms.padLeft + kw;
        if (iw < 0 || iw >= uniforms.inW) {
          continue;
        }
        let zi = ((n * uniforms.outH + oh) * uniforms.outW + ow) * outC + co;
        acc += x[((n * uniforms.inH + ih) * uniforms.inW + iw) * inC + ci] * dz[zi];
      }
    }
  }
  result[index] = acc;
}
