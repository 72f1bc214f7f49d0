// conv_bwd_data_naive — naive dx = conv2d backprop-input of dz, one dx element per invocation.
//
// The oracle of the generated bwdData view (src/ops/conv/gemm_wgsl.ts), selected by the
// FMNIST_NAIVE_KERNELS flag: a gather over the taps (kh, kw) and output channels co, with output
// pixel oh = (ih + padTop - kh) / strideH when that divides exactly and lies in [0, Ho) (same
// for w). Straight port of the scatter loop in convBnReluGradRef, turned into a gather.
//
// Bindings (in order): 0 result dx (N*H*W*Cin) f32; 1 dz (N*Ho*Wo*Cout) f32 (bn_relu_bwd_dz.wgsl);
//   2 w (KH,KW,Cin,Cout) f32; then uniforms (geometry). Flat 1-D views.
// Grid: flat, one invocation per dx element, workgroup 64.

fn main(index : i32) {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  if (index >= uniforms.batch * uniforms.inH * uniforms.inW * inC) {
    return;
  }
  let ci = index % inC;
  let pix = index / inC;
  let iw = pix % uniforms.inW;
  let ih = (pix / uniforms.inW) % uniforms.inH;
  let n = pix / (uniforms.inW * uniforms.inH);
  var acc = 0.0;
  for (var kh = 0; kh < uniforms.kH; kh++) {
    let th = ih + uniforms.padTop - kh;
    let oh = th / uniforms.strideH;
    if (th < 0 || oh * uniforms.strideH != th || oh >= uniforms.outH) {
      continue;
    }
    for (var kw = 0; kw < uniforms.kW; kw++) {
      let tw = iw + uniforms.padLeft - kw;
      let ow = tw / uniforms.strideW;
      if (tw < 0 || ow * uniforms.strideW != tw || ow >= uniforms.outW) {
        continue;
      }
      let zRow = ((n * uniforms.outH + oh) * uniforms.outW + ow) * outC;
      let wRow = ((kh * uniforms.kW + kw) * inC + ci) * outC;
      for (var co = 0; co < outC; co++) {
        acc += dz[zRow + co] * w[wRow + co];
      }
    }
  }
  result[index] = acc;
}
