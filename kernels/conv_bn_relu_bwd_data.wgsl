// conv_bn_relu_bwd_data — dx = conv2d backprop-input of dz (pass 3 of 4), register-tiled.
//
//   dx[n, ih, iw, ci] = sum_{kh, kw, co} dz[n, oh, ow, co] * w[kh, kw, ci, co]
//   over the taps with oh = (ih + padTop - kh) / strideH exact and in [0, Ho) (same for w);
//   pixels no output touches get 0.
// Each invocation owns one input pixel and 4*VC adjacent input channels (VC vec4 accumulators,
// VC is a compile-time constant prepended by the program, part of the shader key). The lanes of
// a workgroup are 64 consecutive pixels and share the channel block, so the weight loads have
// the same address in every lane (llvmpipe turns them into one scalar load + broadcast) and only
// the dz load differs per lane. Taps are walked in lockstep by all lanes, an invalid tap (stride
// or border) is masked with select instead of branched on, so control flow stays uniform.
//
// Bindings (in order): 0 result dx (N*H*W*Cin) f32; 1 dz (M, Cout) f32 (from
//   conv_bn_relu_bwd_dz.wgsl); 2 w (KH, KW, Cin, Cout) f32; then uniforms (geometry, invM).
//   Flat 1-D views.
// Grid: workgroup 64; workgroupId.x (looping with stride numWorkgroups.x) -> block of 64 pixels
//   of N*H*W, workgroupId.y -> channel block of 4*VC input channels.
// Versions: v1 = conv_bn_relu_bwd_data_v1.wgsl (one dx element per invocation, dz on the fly);
//   v2 = this file.

fn main() {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  let numPix = uniforms.batch * uniforms.inH * uniforms.inW;
  let numBlocks = (numPix + 63) / 64;
  let ciBase = i32(workgroupId.y) * (4 * VC);
  // Weight row offsets of this channel block, clamped to the last channel (those lanes' extra
  // accumulators are never stored).
  var wOff : array<vec4<i32>, VC>;
  for (var j = 0; j < VC; j++) {
    let ci = vec4<i32>(ciBase + 4 * j) + vec4<i32>(0, 1, 2, 3);
    wOff[j] = min(ci, vec4<i32>(inC - 1)) * outC;
  }
  for (var blk = i32(workgroupId.x); blk < numBlocks; blk += i32(numWorkgroups.x)) {
    let pixel = blk * 64 + i32(localId.x);
    let pix = min(pixel, numPix - 1);
    let iw = pix % uniforms.inW;
    let ih = (pix / uniforms.inW) % uniforms.inH;
    let n = pix / (uniforms.inW * uniforms.inH);
    var acc : array<vec4<f32>, VC>;
    for (var j = 0; j < VC; j++) {
      acc[j] = vec4<f32>(0.0);
    }
    for (var kh = 0; kh < uniforms.kH; kh++) {
      let th = ih + uniforms.padTop - kh;
      let oh = th / uniforms.strideH;
      let validH = th >= 0 && oh * uniforms.strideH == th && oh < uniforms.outH;
      for (var kw = 0; kw < uniforms.kW; kw++) {
        let tw = iw + uniforms.padLeft - kw;
        let ow = tw / uniforms.strideW;
        let valid = validH && tw >= 0 && ow * uniforms.strideW == tw && ow < uniforms.outW;
        let zBase = select(0, ((n * uniforms.outH + oh) * uniforms.outW + ow) * outC, valid);
        let wBase = (kh * uniforms.kW + kw) * inC * outC;
        for (var co = 0; co < outC; co++) {
          let s = select(0.0, dz[zBase + co], valid);
          for (var j = 0; j < VC; j++) {
            let o = wOff[j] + vec4<i32>(wBase + co);
            acc[j] += s * vec4<f32>(w[o.x], w[o.y], w[o.z], w[o.w]);
          }
        }
      }
    }
    if (pixel < numPix) {
      for (var j = 0; j < VC; j++) {
        for (var k = 0; k < 4; k++) {
          let ci = ciBase + 4 * j + k;
          if (ci < inC) {
            result[pixel * inC + ci] = acc[j][k];
          }
        }
      }
    }
  }
}
