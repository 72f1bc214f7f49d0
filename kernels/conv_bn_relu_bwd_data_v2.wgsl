// conv_bn_relu_bwd_data_v2 — dx = conv2d backprop-input of dz, scalar loads, register-tiled.
//
// Fallback of conv_bn_relu_bwd_data.wgsl (vec4) for channel counts that are not multiples of 4
// (e.g. the first layer, Cin = 1). Same math and grid; each invocation owns TR pixels x 4*TV
// input channels (TR*TV vec4 accumulators, compile-time constants); per step (tap, output
// channel) it loads TR dz values and 4*TV weights. Channels past Cin read a clamped channel and
// are not stored.
//
// Bindings (in order): 0 result dx (N*H*W*Cin) f32; 1 dz (M, Cout) f32; 2 w (KH, KW, Cin, Cout)
//   f32; then uniforms (geometry, invM). Flat 1-D views.
// Grid: workgroup 64; workgroupId.x (looping) -> block of 64*TR pixels, workgroupId.y -> block of
//   4*TV input channels.
// Measured: see conv_bn_relu_bwd_data.wgsl (2.6-2.8 GFLOP/s at TR=8, TV=2 on llvmpipe).

fn main() {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  let numPix = uniforms.batch * uniforms.inH * uniforms.inW;
  let numBlocks = (numPix + 64 * TR - 1) / (64 * TR);
  let ciBase = i32(workgroupId.y) * (4 * TV);
  var wOff : array<vec4<i32>, TV>;
  for (var j = 0; j < TV; j++) {
    let ci = vec4<i32>(ciBase + 4 * j) + vec4<i32>(0, 1, 2, 3);
    wOff[j] = min(ci, vec4<i32>(inC - 1)) * outC;
  }
  for (var blk = i32(workgroupId.x); blk < numBlocks; blk += i32(numWorkgroups.x)) {
    let pixel0 = (blk * 64 + i32(localId.x)) * TR;
    var ih : array<i32, TR>;
    var iw : array<i32, TR>;
    var nOff : array<i32, TR>;
    for (var t = 0; t < TR; t++) {
      let pix = min(pixel0 + t, numPix - 1);
      iw[t] = pix % uniforms.inW;
      ih[t] = (pix / uniforms.inW) % uniforms.inH;
      nOff[t] = (pix / (uniforms.inW * uniforms.inH)) * uniforms.outH;
    }
    var acc : array<vec4<f32>, TR * TV>;
    for (var i = 0; i < TR * TV; i++) {
      acc[i] = vec4<f32>(0.0);
    }
    for (var kh = 0; kh < uniforms.kH; kh++) {
      for (var kw = 0; kw < uniforms.kW; kw++) {
        var zBase : array<i32, TR>;
        var ok : array<bool, TR>;
        for (var t = 0; t < TR; t++) {
          let th = ih[t] + uniforms.padTop - kh;
          let oh = th / uniforms.strideH;
          let tw = iw[t] + uniforms.padLeft - kw;
          let ow = tw / uniforms.strideW;
          ok[t] = th >= 0 && oh * uniforms.strideH == th && oh < uniforms.outH &&
            tw >= 0 && ow * uniforms.strideW == tw && ow < uniforms.outW;
          zBase[t] = select(0, ((nOff[t] + oh) * uniforms.outW + ow) * outC, ok[t]);
        }
        let wBase = (kh * uniforms.kW + kw) * inC * outC;
        for (var co = 0; co < outC; co++) {
          var wv : array<vec4<f32>, TV>;
          for (var j = 0; j < TV; j++) {
            let o = wOff[j] + vec4<i32>(wBase + co);
            wv[j] = vec4<f32>(w[o.x], w[o.y], w[o.z], w[o.w]);
          }
          for (var t = 0; t < TR; t++) {
            let s = select(0.0, dz[zBase[t] + co], ok[t]);
            for (var j = 0; j < TV; j++) {
              acc[t * TV + j] += s * wv[j];
            }
          }
        }
      }
    }
    for (var t = 0; t < TR; t++) {
      let pixel = pixel0 + t;
      if (pixel < numPix) {
        for (var j = 0; j < TV; j++) {
          for (var k = 0; k < 4; k++) {
            let ci = ciBase + 4 * j + k;
            if (ci < inC) {
              result[pixel * inC + ci] = acc[t * TV + j][k];
            }
          }
        }
      }
    }
  }
}
