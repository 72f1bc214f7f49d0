// conv_bn_relu_bwd_data — dx = conv2d backprop-input of dz (pass 3), vec4, register-tiled.
//
//   dx[n, ih, iw, ci] = sum_{kh, kw, co} dz[n, oh, ow, co] * w[kh, kw, ci, co]
//   over the taps with oh = (ih + padTop - kh) / strideH exact and in [0, Ho) (same for w);
//   input pixels that no output touches get 0.
// Each invocation owns TR input pixels x TV vec4s of input channels (TR*TV vec4 accumulators;
// TR, TV are compile-time constants prepended by the program, part of the shader key). Per step
// (tap, 4 output channels) it loads TR dz vec4s and 4*TV filter vec4s for 16*TR*TV FMAs.
// Needs Cin % 4 == 0 and Cout % 4 == 0 (else conv_bn_relu_bwd_data_v2.wgsl). Invalid taps
// (stride phase, border) are masked with select, so all lanes walk the same loops.
//
// Bindings (in order): 0 result dx (N*H*W*Cin / 4) vec4<f32>; 1 dz (M*Cout / 4) vec4<f32> (from
//   conv_bn_relu_bwd_dz.wgsl); 2 w = wt (KH, KW, Cout, Cin / 4) vec4<f32>, the filter with Cin
//   innermost (conv_bn_relu_bwd_filter_t.wgsl); then uniforms (geometry, invM). Flat 1-D views.
// Grid: workgroup 64; workgroupId.x (looping with stride numWorkgroups.x) -> block of 64*TR
//   pixels of N*H*W (invocation i owns pixels (block*64 + i)*TR + 0..TR-1), workgroupId.y ->
//   block of TV input-channel vec4s.
// Versions (llvmpipe, 2 shared cores, x=[16,28,28,32] w=[3,3,32,32], GPU timestamps; numbers
//   from one run each, loaded machine, so only ratios within a row mean much):
//   v1 conv_bn_relu_bwd_data_v1.wgsl: one dx element per invocation, dz on the fly (oracle).
//   v2 lanes = pixels, 4*VC channels per invocation, scalar loads: 0.74 (VC=1) .. 0.95 (VC=8)
//      GFLOP/s. The cost tracked the number of loads, not FMAs: every load of llvmpipe's SIMD
//      lanes costs about the same whether or not the address is uniform across lanes.
//   v2 (file _v2) TR x 4*TV tile, scalar loads: 2.6-2.8 GFLOP/s at TR=8, TV=2 (v2 above: 0.9).
//   v3 this file, vec4 loads and the transposed filter: 3.9-4.6 GFLOP/s at TR=4, TV=2, vs 1.1 for
//      _v2 in the same run. Bigger tiles (TR*TV >= 16 vec4) spill and run 1.5-3x slower.
//      Staging the filter block in workgroup memory (one barrier, then shared loads) was tried:
//      no gain beyond the noise (+-5%, batch 32, both enhanced-CNN shapes), so it was dropped.

fn main() {
  let inC4 = uniforms.inC / 4;
  let outC4 = uniforms.outC / 4;
  let numPix = uniforms.batch * uniforms.inH * uniforms.inW;
  let numBlocks = (numPix + 64 * TR - 1) / (64 * TR);
  let ci40 = i32(workgroupId.y) * TV;
  var wOff : array<i32, TV>;
  for (var j = 0; j < TV; j++) {
    wOff[j] = min(ci40 + j, inC4 - 1);
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
          zBase[t] = select(0, ((nOff[t] + oh) * uniforms.outW + ow) * outC4, ok[t]);
        }
        let wBase = (kh * uniforms.kW + kw) * uniforms.outC * inC4;
        for (var co4 = 0; co4 < outC4; co4++) {
          var wv : array<vec4<f32>, 4 * TV>;
          for (var k = 0; k < 4; k++) {
            for (var j = 0; j < TV; j++) {
              wv[k * TV + j] = w[wBase + (co4 * 4 + k) * inC4 + wOff[j]];
            }
          }
          for (var t = 0; t < TR; t++) {
            let s = select(vec4<f32>(0.0), dz[zBase[t] + co4], ok[t]);
            for (var j = 0; j < TV; j++) {
              acc[t * TV + j] += s.x * wv[j] + s.y * wv[TV + j] + s.z * wv[2 * TV + j] +
                s.w * wv[3 * TV + j];
            }
          }
        }
      }
    }
    for (var t = 0; t < TR; t++) {
      let pixel = pixel0 + t;
      if (pixel < numPix) {
        for (var j = 0; j < TV; j++) {
          if (ci40 + j < inC4) {
            result[pixel * inC4 + ci40 + j] = acc[t * TV + j];
          }
        }
      }
    }
  }
}
