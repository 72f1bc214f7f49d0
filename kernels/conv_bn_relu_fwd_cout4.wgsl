// conv_bn_relu_fwd_cout4 — register-tiled implicit-GEMM convolution for Cout % 4 == 0 and any
// Cin (the first layer: Cin = 1 or 3): conv_bn_relu_fwd_vec4.wgsl with scalar x loads. Training
// forward pass 1 (epilogue stores z) and the single pass of inference (scale/shift/ReLU).
//
// Each invocation computes an 8-row x 8-channel block (16 vec4 accumulators, unrolled) and walks
// K = KH*KW*Cin one input channel at a time: 8 scalar x loads + 2 vec4 filter loads per 64 FMAs
// (conv_bn_relu_fwd.wgsl, for any Cout: 8 scalar loads per 16 FMAs). On llvmpipe a storage load
// costs a loop over the 8 SIMD lanes whatever its width, so loads per FMA set the speed.
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) as vec4; 1 x (N,H,W,Cin) NHWC f32;
//   2 w (KH,KW,Cin,Cout) as vec4 (Cout/4 per (kh,kw,ci)); [3 scale, 4 shift (Cout) as vec4:
//   inference epilogue]; uniforms (xShape, wShape, outShape (element shapes), stride : vec2<i32>
//   (sh, sw), pad : vec2<i32> (top, left)).
// Grid: flat, workgroup (64,1,1); invocation id g = global_id.x + global_id.y * 64 * groups.x
//   -> channel block cb = g % ceil(Cout/8), row block rb = g / ceil(Cout/8): rows 8rb..8rb+7,
//   channels 8cb..8cb+7 (when Cout % 8 == 4 the last block's upper half reads the next filter row
//   or a clamped out-of-bounds value and is never stored; rows past M repeat row M-1, not stored).
// Passes: 1. The program (src/ops/conv_bn_relu_fwd.ts) prepends `alias VT = vec4<f32>;` and
//   `writeOutput(index, c, v : VT)` (index and c in groups of 4 channels).
// Versions: see conv_bn_relu_fwd_vec4.wgsl.

fn main() {
  let inW = uniforms.xShape[2];
  let inC = uniforms.xShape[3];
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
  // (image base, top input row, left input column) of each row.
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
      // x offset of each row's tap, 0 outside the image, and its 1/0 multiplier.
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
      var wi = (kh * kW + kw) * inC * outC4 + co / 4;
      for (var ci = 0; ci < inC; ci++) {
        // Filter row ci of tap (kh, kw): channel groups co/4 (wa) and co/4+1 (wb).
        let wa = w[wi];
        let wb = w[wi + 1];
        let x0 = x[o0 + ci] * k0;
        a0 += x0 * wa;
        b0 += x0 * wb;
        let x1 = x[o1 + ci] * k1;
        a1 += x1 * wa;
        b1 += x1 * wb;
        let x2 = x[o2 + ci] * k2;
        a2 += x2 * wa;
        b2 += x2 * wb;
        let x3 = x[o3 + ci] * k3;
        a3 += x3 * wa;
        b3 += x3 * wb;
        let x4 = x[o4 + ci] * k4;
        a4 += x4 * wa;
        b4 += x4 * wb;
        let x5 = x[o5 + ci] * k5;
        a5 += x5 * wa;
        b5 += x5 * wb;
        let x6 = x[o6 + ci] * k6;
        a6 += x6 * wa;
        b6 += x6 * wb;
        let x7 = x[o7 + ci] * k7;
        a7 += x7 * wa;
        b7 += x7 * wb;
        wi += outC4;
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
