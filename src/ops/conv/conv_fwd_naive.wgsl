// conv_fwd_naive — naive direct convolution, one output element per invocation.
//
// The oracle of the generated forward (src/ops/conv/gemm_wgsl.ts): a straight port of conv2dRef
// (src/ops/conv_bn_relu/conv_bn_relu_ref.ts), selected by the FMNIST_NAIVE_KERNELS flag
// (src/flags.ts), like tfjs's WEBGPU_USE_NAIVE_CONV2D_DEBUG. The program prepends the
// generator's epilogue snippet (`alias VB = f32;` and `store(index, c, v)`: z as is, or
// relu(v * scale[c] + shift[c]) for inference, or relu(v + bias[c])).
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) f32; 1 x (N,H,W,Cin) NHWC f32;
//   2 w (KH,KW,Cin,Cout) f32; [3 scale (Cout), 4 shift (Cout): inference only]; then uniforms
//   (xShape, wShape, outShape, size, stride : vec2<i32> = (sh, sw), pad : vec2<i32> = (top, left)).
// Grid: flat, one invocation per output element (index -> n, oh, ow, co), workgroup 64.
// Passes: 1. Zero padding is handled by skipping taps outside the input.

fn main(index : i32) {
  if (index >= uniforms.size) {
    return;
  }
  let coords = getCoordsFromIndex(index); // (n, oh, ow, co)
  let n = coords[0];
  let co = coords[3];
  let inH = uniforms.xShape[1];
  let inW = uniforms.xShape[2];
  let inC = uniforms.xShape[3];
  let kH = uniforms.wShape[0];
  let kW = uniforms.wShape[1];
  let outC = uniforms.wShape[3];
  let ih0 = coords[1] * uniforms.stride[0] - uniforms.pad[0];
  let iw0 = coords[2] * uniforms.stride[1] - uniforms.pad[1];
  var acc = 0.0;
  for (var kh = 0; kh < kH; kh++) {
    let ih = ih0 + kh;
    if (ih < 0 || ih >= inH) {
      continue;
    }
    for (var kw = 0; kw < kW; kw++) {
      let iw = iw0 + kw;
      if (iw < 0 || iw >= inW) {
        continue;
      }
      let xBase = ((n * inH + ih) * inW + iw) * inC;
      let wBase = (kh * kW + kw) * inC * outC + co;
      for (var ci = 0; ci < inC; ci++) {
        acc += x[xBase + ci] * w[wBase + ci * outC];
      }
    }
  }
  store(index, co, acc);
}
