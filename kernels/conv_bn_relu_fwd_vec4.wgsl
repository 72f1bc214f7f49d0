// conv_bn_relu_fwd_vec4 — register-tiled implicit-GEMM convolution with vec4 loads, for
// Cin % 4 == 0 and Cout % 4 == 0 (typically every conv but the first). Training forward pass 1
// (epilogue stores z) and the single pass of inference (epilogue applies scale/shift/ReLU).
//
// GEMM view: rows m = (n, oh, ow) (M = N*Ho*Wo), columns = Cout, K = KH*KW*Cin. Each invocation
// computes an 8-row x 8-channel block (16 vec4 accumulators, unrolled by hand: the same code with
// WGSL arrays and loops measured 2.9 vs 4.9 GFLOP/s, the arrays went to scratch memory) and walks
// K in steps of 4 input channels: per (kh, kw, ci..ci+3) it loads 8 vec4 of x (one per row, 4
// input channels) and 8 vec4 of the filter (4 input channels x 2 groups of 4 output channels),
// then does 8 x 2 x 4 vec4 FMAs.
//
// Why (llvmpipe, Mesa 22.3, 8 lanes per AVX2 vector): every storage-buffer load becomes a loop
// over the 8 lanes with a bounds check per lane, but one loop iteration fetches all components of
// a vec4, so loads per FMA matter most (bigger tiles gain less than their load counts promise:
// 16 vec4 accumulators already exceed the register file and spill). Measured at batch 128,
// 28x28, 32->32, 3x3 (median, a loaded 2-core machine, same run): scalar 4 rows x 4 ch 1.8 GFLOP/s;
// vec4 loads 4x4 3.8, 4x8 5.3, 8x8 5.2-5.7, 12x8 5.9, 16x16 6.1 (more registers, slower compile);
// fma() instead of a*b+c: no change; x loads made workgroup-uniform (lanes = channels): 3.8-4.0
// (this Mesa has no uniform-load fast path); tf.conv2d in the same runs: 1.4-1.8 GFLOP/s. In a
// quieter moment 8x8 ran 13-17 GFLOP/s best-of-5 (tf.conv2d 4-5).
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) as vec4; 1 x (N,H,W,Cin) NHWC as vec4 (Cin/4 per
//   pixel); 2 w (KH,KW,Cin,Cout) as vec4 (Cout/4 per (kh,kw,ci)); [3 scale, 4 shift (Cout) as vec4:
//   inference epilogue]; uniforms (xShape, wShape, outShape (element shapes), stride : vec2<i32>
//   (sh, sw), pad : vec2<i32> (top, left)).
// Grid: flat, workgroup (64,1,1); invocation id g = global_id.x + global_id.y * 64 * groups.x
//   -> channel block cb = g % ceil(Cout/8), row block rb = g / ceil(Cout/8): rows 8rb..8rb+7,
//   channels 8cb..8cb+7 (when Cout % 8 == 4 the last block's upper half reads the next filter row
//   or a clamped out-of-bounds value and is never stored; rows past M repeat row M-1, not stored).
// Passes: 1. The program (src/ops/conv_bn_relu_fwd.ts) prepends `alias VT = vec4<f32>;` and
//   `writeOutput(index, c, v : VT)` (index and c in groups of 4 channels).
// Versions: v1 conv_bn_relu_fwd_v1.wgsl (one output per invocation); v2 conv_bn_relu_fwd.wgsl
//   (scalar loads, 4x4 block, any channel count); v3 this file, and conv_bn_relu_fwd_cout4.wgsl
//   (same tile, scalar x, for Cin % 4 != 0). Tried and dropped (same run, batch 128): the filter
//   slice staged in workgroup memory (one barrier per workgroup): 9.0 vs 13.1 GFLOP/s; stride-1
//   tiles along a row reusing x across kw (34 instead of 48 loads per kh step): within noise
//   (16.0 vs 14.9, 17.7 vs 16.2 GFLOP/s best-of-5).

fn main() {
  let inW = uniforms.xShape[2];
  let inC4 = uniforms.xShape[3] / 4;
  let kW = uniforms.wShape[1];
  let outC = uniforms.wShape[3];
  let outC4 = outC / 4;
  let rows = uniforms.outShape[0] * uniforms.outShape[1] * uniforms.outShape[2];
  let blocks = (outC + 7) / 8;
  let g = i32(globalId.x) + i32(globalId.y) * i32(numWorkgroups.x) * 64;
  let rb = g / blocks;
  let co = (g - rb * blocks) * 8;
  let m0 = rb * 8;
  if (m0 >= rows) {
    return;
  }
  // (image base in vec4 units, top input row, left input column) of each row.
  let r0 = rowOrigin(m0, rows);
  let r1 = rowOrigin(m0 + 1, rows);
  let r2 = rowOrigin(m0 + 2, rows);
  let r3 = rowOrigin(m0 + 3, rows);
  let r4 = rowOrigin(m0 + 4, rows);
  let r5 = rowOrigin(m0 + 5, rows);
  let r6 = rowOrigin(m0 + 6, rows);
  let r7 = rowOrigin(m0 + 7, rows);
  var a0 = vec4<f32>(0.0); // row 0, channels co..co+3
  var b0 = vec4<f32>(0.0); // row 0, channels co+4..co+7
  var a1 = vec4<f32>(0.0); // row 1, channels co..co+3
  var b1 = vec4<f32>(0.0); // row 1, channels co+4..co+7
  var a2 = vec4<f32>(0.0); // row 2, channels co..co+3
  var b2 = vec4<f32>(0.0); // row 2, channels co+4..co+7
  var a3 = vec4<f32>(0.0); // row 3, channels co..co+3
  var b3 = vec4<f32>(0.0); // row 3, channels co+4..co+7
  var a4 = vec4<f32>(0.0); // row 4, channels co..co+3
  var b4 = vec4<f32>(0.0); // row 4, channels co+4..co+7
  var a5 = vec4<f32>(0.0); // row 5, channels co..co+3
  var b5 = vec4<f32>(0.0); // row 5, channels co+4..co+7
  var a6 = vec4<f32>(0.0); // row 6, channels co..co+3
  var b6 = vec4<f32>(0.0); // row 6, channels co+4..co+7
  var a7 = vec4<f32>(0.0); // row 7, channels co..co+3
  var b7 = vec4<f32>(0.0); // row 7, channels co+4..co+7
  for (var kh = 0; kh < uniforms.wShape[0]; kh++) {
    for (var kw = 0; kw < kW; kw++) {
      // x offset (vec4 units) of each row's tap, 0 outside the image, and its 1/0 multiplier.
      let t0 = tap(r0, kh, kw);
      let t1 = tap(r1, kh, kw);
      let t2 = tap(r2, kh, kw);
      let t3 = tap(r3, kh, kw);
      let t4 = tap(r4, kh, kw);
      let t5 = tap(r5, kh, kw);
      let t6 = tap(r6, kh, kw);
      let t7 = tap(r7, kh, kw);
      let o0 = t0.x;
      let o1 = t1.x;
      let o2 = t2.x;
      let o3 = t3.x;
      let o4 = t4.x;
      let o5 = t5.x;
      let o6 = t6.x;
      let o7 = t7.x;
      let k0 = f32(t0.y);
      let k1 = f32(t1.y);
      let k2 = f32(t2.y);
      let k3 = f32(t3.y);
      let k4 = f32(t4.y);
      let k5 = f32(t5.y);
      let k6 = f32(t6.y);
      let k7 = f32(t7.y);
      var wi = (kh * kW + kw) * inC4 * 4 * outC4 + co / 4;
      for (var ci = 0; ci < inC4; ci++) {
        // Filter rows ci*4+j (j = 0..3), channel groups co/4 (wa) and co/4+1 (wb).
        let wa0 = w[wi];
        let wb0 = w[wi + 1];
        let wa1 = w[wi + outC4];
        let wb1 = w[wi + outC4 + 1];
        let wa2 = w[wi + 2 * outC4];
        let wb2 = w[wi + 2 * outC4 + 1];
        let wa3 = w[wi + 3 * outC4];
        let wb3 = w[wi + 3 * outC4 + 1];
        let x0 = x[o0 + ci] * k0;
        a0 += x0.x * wa0 + x0.y * wa1 + x0.z * wa2 + x0.w * wa3;
        b0 += x0.x * wb0 + x0.y * wb1 + x0.z * wb2 + x0.w * wb3;
        let x1 = x[o1 + ci] * k1;
        a1 += x1.x * wa0 + x1.y * wa1 + x1.z * wa2 + x1.w * wa3;
        b1 += x1.x * wb0 + x1.y * wb1 + x1.z * wb2 + x1.w * wb3;
        let x2 = x[o2 + ci] * k2;
        a2 += x2.x * wa0 + x2.y * wa1 + x2.z * wa2 + x2.w * wa3;
        b2 += x2.x * wb0 + x2.y * wb1 + x2.z * wb2 + x2.w * wb3;
        let x3 = x[o3 + ci] * k3;
        a3 += x3.x * wa0 + x3.y * wa1 + x3.z * wa2 + x3.w * wa3;
        b3 += x3.x * wb0 + x3.y * wb1 + x3.z * wb2 + x3.w * wb3;
        let x4 = x[o4 + ci] * k4;
        a4 += x4.x * wa0 + x4.y * wa1 + x4.z * wa2 + x4.w * wa3;
        b4 += x4.x * wb0 + x4.y * wb1 + x4.z * wb2 + x4.w * wb3;
        let x5 = x[o5 + ci] * k5;
        a5 += x5.x * wa0 + x5.y * wa1 + x5.z * wa2 + x5.w * wa3;
        b5 += x5.x * wb0 + x5.y * wb1 + x5.z * wb2 + x5.w * wb3;
        let x6 = x[o6 + ci] * k6;
        a6 += x6.x * wa0 + x6.y * wa1 + x6.z * wa2 + x6.w * wa3;
        b6 += x6.x * wb0 + x6.y * wb1 + x6.z * wb2 + x6.w * wb3;
        let x7 = x[o7 + ci] * k7;
        a7 += x7.x * wa0 + x7.y * wa1 + x7.z * wa2 + x7.w * wa3;
        b7 += x7.x * wb0 + x7.y * wb1 + x7.z * wb2 + x7.w * wb3;
        wi += 4 * outC4;
      }
    }
  }
  storeRow(m0, rows, co, outC, a0, b0);
  storeRow(m0 + 1, rows, co, outC, a1, b1);
  storeRow(m0 + 2, rows, co, outC, a2, b2);
  storeRow(m0 + 3, rows, co, outC, a3, b3);
  storeRow(m0 + 4, rows, co, outC, a4, b4);
  storeRow(m0 + 5, rows, co, outC, a5, b5);
  storeRow(m0 + 6, rows, co, outC, a6, b6);
  storeRow(m0 + 7, rows, co, outC, a7, b7);
}

// (image base offset in x, in vec4 units; top input row; left input column) of output row m
// (clamped to M-1).
fn rowOrigin(m : i32, rows : i32) -> vec3<i32> {
  let outH = uniforms.outShape[1];
  let outW = uniforms.outShape[2];
  let mc = min(m, rows - 1);
  let n = mc / (outH * outW);
  let rem = mc - n * outH * outW;
  let oh = rem / outW;
  let ow = rem - oh * outW;
  let imageSize4 = uniforms.xShape[1] * uniforms.xShape[2] * (uniforms.xShape[3] / 4);
  return vec3<i32>(n * imageSize4, oh * uniforms.stride[0] - uniforms.pad[0],
                   ow * uniforms.stride[1] - uniforms.pad[1]);
}

// (x offset in vec4 units of tap (kh, kw) for the row with origin o, 1 if inside else 0).
fn tap(o : vec3<i32>, kh : i32, kw : i32) -> vec2<i32> {
  let ih = o.y + kh;
  let iw = o.z + kw;
  let inside = ih >= 0 && ih < uniforms.xShape[1] && iw >= 0 && iw < uniforms.xShape[2];
  let offset = o.x + (ih * uniforms.xShape[2] + iw) * (uniforms.xShape[3] / 4);
  return vec2<i32>(select(0, offset, inside), select(0, 1, inside));
}

fn storeRow(m : i32, rows : i32, co : i32, outC : i32, a : vec4<f32>, b : vec4<f32>) {
  if (m >= rows) {
    return;
  }
  // Output as vec4 (VT): index and channel in groups of 4.
  let base = (m * outC + co) / 4;
  writeOutput(base, co / 4, a);
  if (co + 4 < outC) {
    writeOutput(base + 1, co / 4 + 1, b);
  }
}
