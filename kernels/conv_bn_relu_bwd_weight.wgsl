// conv_bn_relu_bwd_weight — dfilter partials = conv2d backprop-filter of (x, dz) (pass 4), vec4.
//
//   partial[s, kh, kw, ci, co] = sum over the output pixels of split s of
//     x[n, oh*sh - padTop + kh, ow*sw - padLeft + kw, ci] * dz[n, oh, ow, co]
// (taps in the zero padding contribute nothing). The M = N*Ho*Wo reduction is split into S
// slices of whole output rows (n, oh) so that the few weight tiles still fill the device;
// conv_bn_relu_bwd_sum_partials.wgsl adds the slices (with S = 1 the partial is dfilter).
// Each invocation owns 4*TQ filter rows (TQ quads of input channels at one tap each) x TV vec4s
// of output channels: per output pixel it loads TQ x vec4s and TV dz vec4s for 16*TQ*TV FMAs.
// Needs Cin % 4 == 0 and Cout % 4 == 0 (else conv_bn_relu_bwd_weight_v2.wgsl).
//
// Bindings (in order): 0 result partials (S, KH*KW*Cin, Cout / 4) vec4<f32>; 1 dz (M, Cout / 4)
//   vec4<f32>; 2 x (N, H, W, Cin / 4) vec4<f32>; then uniforms (geometry, invM, rowsPerSplit).
//   Flat 1-D views.
// Grid: workgroup 64; workgroupId.x*64 + localId.x -> tile (row-quad tile, column tile), column
//   tiles fastest; workgroupId.z -> split s (rowsPerSplit output rows of N*Ho).
// Versions (llvmpipe, x=[16,28,28,32] w=[3,3,32,32], GPU timestamps, loaded shared machine):
//   v1 conv_bn_relu_bwd_weight_v1.wgsl: one weight per invocation over all of M, dz on the fly.
//   v2 lanes = filter rows, 4*VC channels per invocation, scalar loads: 0.37 (VC=1) .. 1.06
//      (VC=8) GFLOP/s.
//   v2 (file _v2) TR rows x 4*TV channel tile, scalar loads: 1.8-1.9 GFLOP/s at TR=4..8, TV=2.
//   v3 this file, vec4 loads: 2.2-3.7 GFLOP/s at TQ=1, TV=2, vs 0.7 for _v2 in the same run;
//      TQ=2, TV=2 then ran 1.2-1.7x faster than TQ=1, TV=2 at batch 32 (ratios to the dx pass of
//      the same run, the machine being too loaded for absolute numbers).

fn main() {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  let inC4 = inC / 4;
  let outC4 = outC / 4;
  let numRows = uniforms.kH * uniforms.kW * inC;
  let numQuads = numRows / 4;
  let quadTiles = (numQuads + TQ - 1) / TQ;
  let colTiles = (outC4 + TV - 1) / TV;
  let tile = i32(workgroupId.x) * 64 + i32(localId.x);
  let tileC = min(tile, quadTiles * colTiles - 1);
  let q0 = (tileC / colTiles) * TQ;
  let c40 = (tileC % colTiles) * TV;
  var kh : array<i32, TQ>;
  var kw : array<i32, TQ>;
  var ci4 : array<i32, TQ>;
  for (var t = 0; t < TQ; t++) {
    let q = min(q0 + t, numQuads - 1);
    ci4[t] = q % inC4;
    kw[t] = (q / inC4) % uniforms.kW;
    kh[t] = q / (inC4 * uniforms.kW);
  }
  var zOff : array<i32, TV>;
  for (var j = 0; j < TV; j++) {
    zOff[j] = min(c40 + j, outC4 - 1);
  }
  var acc : array<vec4<f32>, TQ * 4 * TV>;
  for (var i = 0; i < TQ * 4 * TV; i++) {
    acc[i] = vec4<f32>(0.0);
  }
  let s = i32(workgroupId.z);
  let outRows = uniforms.batch * uniforms.outH;
  let nr0 = s * uniforms.rowsPerSplit;
  let nr1 = min(outRows, nr0 + uniforms.rowsPerSplit);
  for (var nr = nr0; nr < nr1; nr++) {
    let n = nr / uniforms.outH;
    let oh = nr - n * uniforms.outH;
    var xRow : array<i32, TQ>;
    var okH : array<bool, TQ>;
    for (var t = 0; t < TQ; t++) {
      let ih = oh * uniforms.strideH - uniforms.padTop + kh[t];
      okH[t] = ih >= 0 && ih < uniforms.inH;
      xRow[t] = ((n * uniforms.inH + ih) * uniforms.inW) * inC4 + ci4[t];
    }
    let zRow = nr * uniforms.outW * outC4;
    for (var ow = 0; ow < uniforms.outW; ow++) {
      let zi = zRow + ow * outC4;
      var dzv : array<vec4<f32>, TV>;
      for (var j = 0; j < TV; j++) {
        dzv[j] = dz[zi + zOff[j]];
      }
      let iw0 = ow * uniforms.strideW - uniforms.padLeft;
      for (var t = 0; t < TQ; t++) {
        let iw = iw0 + kw[t];
        let ok = okH[t] && iw >= 0 && iw < uniforms.inW;
        let xv = select(vec4<f32>(0.0), x[select(0, xRow[t] + iw * inC4, ok)], ok);
        for (var j = 0; j < TV; j++) {
          acc[(t * 4 + 0) * TV + j] += xv.x * dzv[j];
          acc[(t * 4 + 1) * TV + j] += xv.y * dzv[j];
          acc[(t * 4 + 2) * TV + j] += xv.z * dzv[j];
          acc[(t * 4 + 3) * TV + j] += xv.w * dzv[j];
        }
      }
    }
  }
  if (tile < quadTiles * colTiles) {
    for (var t = 0; t < TQ; t++) {
      let q = q0 + t;
      if (q < numQuads) {
        for (var k = 0; k < 4; k++) {
          let base = (s * numRows + q * 4 + k) * outC4;
          for (var j = 0; j < TV; j++) {
            if (c40 + j < outC4) {
              result[base + c40 + j] = acc[(t * 4 + k) * TV + j];
            }
          }
        }
      }
    }
  }
}
