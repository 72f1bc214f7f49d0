// conv_bn_relu_fwd — register-tiled implicit-GEMM convolution (training forward pass 1, and the
// single pass of inference with the conv_bn_relu_infer.wgsl epilogue).
//
// GEMM view: rows m = (n, oh, ow) (M = N*Ho*Wo), columns = Cout, K = KH*KW*Cin. Each invocation
// computes a 4-row x 4-channel block in 4 vec4 accumulators and walks K once: per (kh, kw, ci) it
// loads 4 filter values (Cout contiguous) and 4 x values, then does 4 vec4 FMAs. Zero padding: a
// tap outside the image reads x at offset 0 and multiplies it by 0 (no branch in the K loop).
// The program (src/ops/conv_bn_relu_fwd.ts) prepends `alias VT = f32;` and an epilogue
// `writeOutput(index, c, v)`: store z (training, conv_bn_relu_fwd_epilogue_z.wgsl) or
// relu(v*scale+shift) (inference, conv_bn_relu_infer.wgsl).
//
// Used when Cout is not a multiple of 4 (odd test shapes); conv_bn_relu_fwd_vec4.wgsl and
// conv_bn_relu_fwd_cout4.wgsl cover the rest. On llvmpipe every scalar storage load is a
// loop over the 8 SIMD lanes, so this version is load-bound: measured 1.8 GFLOP/s at batch 128,
// 28x28, 32->32, 3x3 on a loaded 2-core machine, tf.conv2d 1.6 in the same run, vec4 version 5.3.
// No workgroup memory: its loads take the same per-lane path, and barriers are costly there.
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) f32; 1 x (N,H,W,Cin) NHWC f32;
//   2 w (KH,KW,Cin,Cout) f32 (read 4 channels at a time; past Cout the extra lanes read the next
//   filter row or a clamped out-of-bounds value and are never stored); [3 scale, 4 shift: infer];
//   uniforms (xShape, wShape, outShape, stride : vec2<i32> (sh, sw), pad : vec2<i32> (top, left)).
// Grid: flat, workgroup (64,1,1); invocation id g = global_id.x + global_id.y * 64 * groups.x
//   -> channel group cg = g % ceil(Cout/4), row block rb = g / ceil(Cout/4): rows 4rb..4rb+3,
//   channels 4cg..4cg+3 (adjacent lanes share rows, so their x loads hit the same addresses).
// Passes: 1 (the epilogue writes z or y directly).
// Versions: v1 conv_bn_relu_fwd_v1.wgsl (one output per invocation). v2 this file (any channel
//   count). v3 conv_bn_relu_fwd_vec4.wgsl (vec4 loads, Cin and Cout multiples of 4) and
//   conv_bn_relu_fwd_cout4.wgsl (Cout multiple of 4).

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
  let groups = (outC + 3) / 4;
  let g = i32(globalId.x) + i32(globalId.y) * i32(numWorkgroups.x) * 64;
  let rb = g / groups;
  let co = (g - rb * groups) * 4;
  let m0 = rb * 4;
  if (m0 >= rows) {
    return;
  }
  // Top-left input corner and image base of each of the 4 rows (rows past M repeat row M-1;
  // their results are not stored).
  let r0 = rowOrigin(m0, rows);
  let r1 = rowOrigin(m0 + 1, rows);
  let r2 = rowOrigin(m0 + 2, rows);
  let r3 = rowOrigin(m0 + 3, rows);
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var kh = 0; kh < kH; kh++) {
    for (var kw = 0; kw < kW; kw++) {
      // x offset of each row's tap (0 outside the image) and its 1/0 multiplier.
      let t0 = tap(r0, kh, kw);
      let t1 = tap(r1, kh, kw);
      let t2 = tap(r2, kh, kw);
      let t3 = tap(r3, kh, kw);
      let o0 = t0.x;
      let o1 = t1.x;
      let o2 = t2.x;
      let o3 = t3.x;
      let k0 = f32(t0.y);
      let k1 = f32(t1.y);
      let k2 = f32(t2.y);
      let k3 = f32(t3.y);
      var wi = (kh * kW + kw) * inC * outC + co;
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

// (image base offset in x, top input row, left input column) of output row m (clamped to M-1).
fn rowOrigin(m : i32, rows : i32) -> vec3<i32> {
  let outH = uniforms.outShape[1];
  let outW = uniforms.outShape[2];
  let mc = min(m, rows - 1);
  let n = mc / (outH * outW);
  let rem = mc - n * outH * outW;
  let oh = rem / outW;
  let ow = rem - oh * outW;
  let imageSize = uniforms.xShape[1] * uniforms.xShape[2] * uniforms.xShape[3];
  return vec3<i32>(n * imageSize, oh * uniforms.stride[0] - uniforms.pad[0],
                   ow * uniforms.stride[1] - uniforms.pad[1]);
}

// (x offset of tap (kh, kw) for the row with origin o, 1 if inside the image else 0).
fn tap(o : vec3<i32>, kh : i32, kw : i32) -> vec2<i32> {
  let ih = o.y + kh;
  let iw = o.z + kw;
  let inside = ih >= 0 && ih < uniforms.xShape[1] && iw >= 0 && iw < uniforms.xShape[2];
  let offset = o.x + (ih * uniforms.xShape[2] + iw) * uniforms.xShape[3];
  return vec2<i32>(select(0, offset, inside), select(0, 1, inside));
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
