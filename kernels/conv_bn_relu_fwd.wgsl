// conv_bn_relu_fwd — register-tiled implicit-GEMM convolution (training forward pass 1, and the
// single pass of inference with the conv_bn_relu_infer.wgsl epilogue).
//
// GEMM view: rows m = (n, oh, ow) (M = N*Ho*Wo), columns = Cout, K = KH*KW*Cin. Each invocation
// computes a 4-row x 4-channel block (4 vec4 accumulators) and walks K once: per (kh, kw, ci) it
// loads one vec4 of the filter (Cout contiguous) and 4 scalars of x, then does 4 vec4 FMAs.
// Lanes of a workgroup take adjacent channel groups of the SAME 4 rows: the x addresses depend on
// workgroup_id only, so a SIMD back end (llvmpipe: 8 lanes per AVX2 vector) can load each x value
// once and broadcast it; only the filter load differs per lane. No workgroup memory, no barriers.
// The program prepends `writeOutput(index, c, v)` (epilogue: z for training, scale/shift/ReLU for
// inference) and `const ROWS_PER_GROUP` (rows a workgroup walks, in blocks of 4).
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) f32; 1 x (N,H,W,Cin) NHWC f32;
//   2 w (KH,KW,Cin,Cout) f32 (read 4 channels at a time; past Cout the extra lanes read the next
//   filter row or a clamped out-of-bounds value and are never stored); [3 scale, 4 shift: infer];
//   uniforms (xShape, wShape, outShape, stride : vec2<i32> (sh, sw), pad : vec2<i32> (top, left)).
// Grid: workgroup (8,1,1); lane -> channel group cg = workgroup_id.y * 8 + local_id.x
//   (channels 4cg..4cg+3); workgroup_id.x + workgroup_id.z * num_workgroups.x -> block of
//   ROWS_PER_GROUP rows. Dispatch (ceil(M / ROWS_PER_GROUP) split over x/z, ceil(Cout / 32), .).
// Passes: 1 (the epilogue writes z or y directly).
// Versions: v1 = conv_bn_relu_fwd_v1.wgsl (one output per invocation). v2 = this file.

fn main() {
  let inH = uniforms.xShape[1];
  let inW = uniforms.xShape[2];
  let inC = uniforms.xShape[3];
  let kH = uniforms.wShape[0];
  let kW = uniforms.wShape[1];
  let outC = uniforms.wShape[3];
  let outH = uniforms.outShape[1];
  let outW = uniforms.outShape[2];
  let rows = uniforms.outShape[0] * outH * outW;
  let cg = i32(workgroupId.y) * 8 + i32(localId.x);
  let co = cg * 4;
  if (co >= outC) {
    return;
  }
  let block = i32(workgroupId.x + workgroupId.z * numWorkgroups.x);
  let hw = outH * outW;
  let kRow = inC * outC; // filter stride between (kh, kw) taps
  for (var mb = 0; mb < ROWS_PER_GROUP; mb += 4) {
    let m0 = block * ROWS_PER_GROUP + mb;
    if (m0 >= rows) {
      break;
    }
    // Per row: image base offset and top-left input corner (rows past M are clamped to M-1 and
    // computed twice; their results are not stored).
    var xb : array<i32, 4>;
    var ih0 : array<i32, 4>;
    var iw0 : array<i32, 4>;
    for (var r = 0; r < 4; r++) {
      let m = min(m0 + r, rows - 1);
      let n = m / hw;
      let rem = m - n * hw;
      let oh = rem / outW;
      let ow = rem - oh * outW;
      xb[r] = n * inH * inW * inC;
      ih0[r] = oh * uniforms.stride[0] - uniforms.pad[0];
      iw0[r] = ow * uniforms.stride[1] - uniforms.pad[1];
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kh = 0; kh < kH; kh++) {
      for (var kw = 0; kw < kW; kw++) {
        // x offset of each row's tap, and 1/0 for inside/outside the image (zero padding).
        var off : array<i32, 4>;
        var keep : array<f32, 4>;
        for (var r = 0; r < 4; r++) {
          let ih = ih0[r] + kh;
          let iw = iw0[r] + kw;
          let inside = ih >= 0 && ih < inH && iw >= 0 && iw < inW;
          off[r] = select(0, xb[r] + (ih * inW + iw) * inC, inside);
          keep[r] = select(0.0, 1.0, inside);
        }
        let o0 = off[0];
        let o1 = off[1];
        let o2 = off[2];
        let o3 = off[3];
        let k0 = keep[0];
        let k1 = keep[1];
        let k2 = keep[2];
        let k3 = keep[3];
        var wi = (kh * kW + kw) * kRow + co;
        for (var ci = 0; ci < inC; ci++) {
          let wv = vec4<f32>(w[wi], w[wi + 1], w[wi + 2], w[wi + 3]);
          acc0 += (x[o0 + ci] * k0) * wv;
          acc1 += (x[o1 + ci] * k1) * wv;
          acc2 += (x[o2 + ci] * k2) * wv;
          acc3 += (x[o3 + ci] * k3) * wv;
          wi += outC;
        }
      }
    }
    storeRow(m0, rows, co, outC, acc0);
    storeRow(m0 + 1, rows, co, outC, acc1);
    storeRow(m0 + 2, rows, co, outC, acc2);
    storeRow(m0 + 3, rows, co, outC, acc3);
  }
}

fn storeRow(m : i32, rows : i32, co : i32, outC : i32, v : vec4<f32>) {
  if (m >= rows) {
    return;
  }
  let base = m * outC + co;
  for (var j = 0; j < 4; j++) {
    if (co + j < outC) {
      writeOutput(base + j, co + j, v[j]);
    }
  }
}
