// conv_bn_relu_bwd_weight_v1 — naive dfilter = conv2d backprop-filter of (x, dz) (version 1).
//
// One invocation per weight (kh, kw, ci, co) loops over all M = N*Ho*Wo output pixels, skipping
// taps that fall in the zero padding, with dz computed on the fly (bnDz). Oracle/fallback for
// conv_bn_relu_bwd_weight.wgsl (FMNIST_NAIVE_KERNELS=1).
// Prepended: conv_bn_relu_bwd_bn_fn.wgsl.
//
// Bindings (in order): 0 result dfilter (KH*KW*Cin*Cout) f32; 1 dy; 2 z; 3 stats; 4 gamma;
//   5 beta; 6 sums (2, Cout) = dbeta; dgamma; 7 x (N,H,W,Cin) f32; then uniforms (geometry,
//   invM). Flat 1-D views.
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
        acc += x[((n * uniforms.inH + ih) * uniforms.inW + iw) * inC + ci] * bnDz(zi, co);
      }
    }
  }
  result[index] = acc;
}
