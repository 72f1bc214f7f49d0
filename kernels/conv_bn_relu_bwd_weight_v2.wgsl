// conv_bn_relu_bwd_weight_v2 — dfilter partials, scalar loads, register-tiled.
//
// Fallback of conv_bn_relu_bwd_weight.wgsl (vec4) for channel counts that are not multiples of
// 4. Same math, splits and finalize; each invocation owns TR consecutive filter rows r = (kh, kw,
// ci) (each decoded on its own, so rows may span taps) x 4*TV output channels; per output pixel
// it loads TR x values and 4*TV dz values. Rows/channels past the end read clamped indices and
// are not stored.
//
// Bindings (in order): 0 result partials (S, KH*KW*Cin, Cout) f32; 1 dz (M, Cout) f32; 2 x
//   (N, H, W, Cin) f32; then uniforms (geometry, invM, rowsPerSplit). Flat 1-D views.
// Grid: workgroup 64; workgroupId.x*64 + localId.x -> tile (row tile, column tile), column tiles
//   fastest; workgroupId.z -> split s.
// Measured: see conv_bn_relu_bwd_weight.wgsl (1.8-1.9 GFLOP/s at TR=4, TV=2 on llvmpipe).

fn main() {
  let inC = uniforms.inC;
  let outC = uniforms.outC;
  let numRows = uniforms.kH * uniforms.kW * inC;
  let rowTiles = (numRows + TR - 1) / TR;
  let colTiles = (outC + 4 * TV - 1) / (4 * TV);
  let tile = i32(workgroupId.x) * 64 + i32(localId.x);
  let tileC = min(tile, rowTiles * colTiles - 1);
  let row0 = (tileC / colTiles) * TR;
  let coBase = (tileC % colTiles) * (4 * TV);
  var kh : array<i32, TR>;
  var kw : array<i32, TR>;
  var ci : array<i32, TR>;
  for (var t = 0; t < TR; t++) {
    let r = min(row0 + t, numRows - 1);
    ci[t] = r % inC;
    kw[t] = (r / inC) % uniforms.kW;
    kh[t] = r / (inC * uniforms.kW);
  }
  var zOff : array<vec4<i32>, TV>;
  for (var j = 0; j < TV; j++) {
    let co = vec4<i32>(coBase + 4 * j) + vec4<i32>(0, 1, 2, 3);
    zOff[j] = min(co, vec4<i32>(outC - 1));
  }
  var acc : array<vec4<f32>, TR * TV>;
  for (var i = 0; i < TR * TV; i++) {
    acc[i] = vec4<f32>(0.0);
  }
  let s = i32(workgroupId.z);
  let outRows = uniforms.batch * uniforms.outH;
  let nr0 = s * uniforms.rowsPerSplit;
  let nr1 = min(outRows, nr0 + uniforms.rowsPerSplit);
  for (var nr = nr0; nr < nr1; nr++) {
    let n = nr / uniforms.outH;
    let oh = nr - n * uniforms.outH;
    var xRow : array<i32, TR>;
    var okH : array<bool, TR>;
    for (var t = 0; t < TR; t++) {
      let ih = oh * uniforms.strideH - uniforms.padTop + kh[t];
      okH[t] = ih >= 0 && ih < uniforms.inH;
      xRow[t] = ((n * uniforms.inH + ih) * uniforms.inW) * inC + ci[t];
    }
    let zRow = nr * uniforms.outW * outC;
    for (var ow = 0; ow < uniforms.outW; ow++) {
      let zi = zRow + ow * outC;
      var dzv : array<vec4<f32>, TV>;
      for (var j = 0; j < TV; j++) {
        let o = zOff[j] + vec4<i32>(zi);
        dzv[j] = vec4<f32>(dz[o.x], dz[o.y], dz[o.z], dz[o.w]);
      }
      let iw0 = ow * uniforms.strideW - uniforms.padLeft;
      for (var t = 0; t < TR; t++) {
        let iw = iw0 + kw[t];
        let ok = okH[t] && iw >= 0 && iw < uniforms.inW;
        let xv = select(0.0, x[select(0, xRow[t] + iw * inC, ok)], ok);
        for (var j = 0; j < TV; j++) {
          acc[t * TV + j] += xv * dzv[j];
        }
      }
    }
  }
  if (tile < rowTiles * colTiles) {
    for (var t = 0; t < TR; t++) {
      let r = row0 + t;
      if (r < numRows) {
        let base = (s * numRows + r) * outC;
        for (var j = 0; j < TV; j++) {
          for (var k = 0; k < 4; k++) {
            let co = coBase + 4 * j + k;
            if (co < outC) {
              result[base + co] = acc[t * TV + j][k];
            }
          }
        }
      }
    }
  }
}
