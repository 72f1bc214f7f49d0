// conv_bn_relu_bwd_weight — dfilter partials = conv2d backprop-filter of (x, dz) (pass 4 of 4).
//
//   partial[s, kh, kw, ci, co] = sum over the output pixels of split s of
//                                x[n, oh*sh - padTop + kh, ow*sw - padLeft + kw, ci] * dz[n, oh, ow, co]
// (taps in the zero padding contribute nothing). The reduction over M = N*Ho*Wo is split into S
// slices of whole output rows (n, oh) so that KH*KW*Cin*Cout weights still fill the device;
// conv_bn_relu_bwd_sum_partials.wgsl adds the S slices. With S = 1 the partial is dfilter.
// Each invocation owns one filter row r = (kh, kw, ci) and 4*VC adjacent output channels (VC vec4
// accumulators, compile-time constant prepended by the program). The lanes of a workgroup are 64
// consecutive rows sharing the channel block and the output pixel, so the dz loads have the same
// address in every lane (scalar load + broadcast on llvmpipe) and only the x load differs; for
// Cin >= 8 adjacent lanes read adjacent channels of one pixel.
//
// Bindings (in order): 0 result partials (S, KH*KW*Cin, Cout) f32; 1 dz (M, Cout) f32; 2 x
//   (N, H, W, Cin) f32; then uniforms (geometry, invM, rowsPerSplit). Flat 1-D views.
// Grid: workgroup 64; workgroupId.x -> block of 64 filter rows, workgroupId.y -> channel block
//   of 4*VC output channels, workgroupId.z -> split s (rowsPerSplit output rows of N*Ho).
// Versions: v1 = conv_bn_relu_bwd_weight_v1.wgsl (one weight per invocation over all of M, dz on
//   the fly); v2 = this file.

fn main() {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  let numRows = uniforms.kH * uniforms.kW * inC;
  let row = i32(workgroupId.x) * 64 + i32(localId.x);
  let r = min(row, numRows - 1);
  let ci = r % inC;
  let kw = (r / inC) % uniforms.kW;
  let kh = r / (inC * uniforms.kW);
  let coBase = i32(workgroupId.y) * (4 * VC);
  var zOff : array<vec4<i32>, VC>;
  for (var j = 0; j < VC; j++) {
    let co = vec4<i32>(coBase + 4 * j) + vec4<i32>(0, 1, 2, 3);
    zOff[j] = min(co, vec4<i32>(outC - 1));
  }
  var acc : array<vec4<f32>, VC>;
  for (var j = 0; j < VC; j++) {
    acc[j] = vec4<f32>(0.0);
  }
  let s = i32(workgroupId.z);
  let outRows = uniforms.batch * uniforms.outH;
  let row0 = s * uniforms.rowsPerSplit;
  let row1 = min(outRows, row0 + uniforms.rowsPerSplit);
  for (var nr = row0; nr < row1; nr++) {
    let n = nr / uniforms.outH;
    let oh = nr - n * uniforms.outH;
    let ih = oh * uniforms.strideH - uniforms.padTop + kh;
    let validH = ih >= 0 && ih < uniforms.inH;
    let xRow = ((n * uniforms.inH + ih) * uniforms.inW) * inC + ci;
    let zRow = nr * uniforms.outW * outC;
    for (var ow = 0; ow < uniforms.outW; ow++) {
      let iw = ow * uniforms.strideW - uniforms.padLeft + kw;
      let valid = validH && iw >= 0 && iw < uniforms.inW;
      let xv = select(0.0, x[select(0, xRow + iw * inC, valid)], valid);
      let zi = zRow + ow * outC;
      for (var j = 0; j < VC; j++) {
        let o = zOff[j] + vec4<i32>(zi);
        acc[j] += xv * vec4<f32>(dz[o.x], dz[o.y], dz[o.z], dz[o.w]);
      }
    }
  }
  if (row < numRows) {
    let base = (s * numRows + row) * outC;
    for (var j = 0; j < VC; j++) {
      for (var k = 0; k < 4; k++) {
        let co = coBase + 4 * j + k;
        if (co < outC) {
          result[base + co] = acc[j][k];
        }
      }
    }
  }
}
