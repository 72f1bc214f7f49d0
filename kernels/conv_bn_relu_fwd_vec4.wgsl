// conv_bn_relu_fwd_vec4 — register-tiled implicit-GEMM convolution with vec4 loads, for
// Cin % 4 == 0 and Cout % 4 == 0 (typically every conv but the first). Training forward pass 1
// (epilogue stores z) and the single pass of inference (epilogue applies scale/shift/ReLU).
//
// GEMM view: rows m = (n, oh, ow) (M = N*Ho*Wo), columns = Cout, K = KH*KW*Cin. Each invocation
// computes a TILE_ROWS x (4 * TILE_GROUPS) block (16 rows x 16 channels: 64 vec4 accumulators)
// and walks K in steps of 4 input channels: per (kh, kw, ci..ci+3) it loads TILE_ROWS vec4 of x
// (one per row, 4 input channels) and 4 * TILE_GROUPS vec4 of the filter (4 input channels x the
// tile's channel groups), then does TILE_ROWS x TILE_GROUPS x 4 vec4 FMAs. main() is generated,
// fully unrolled, by vec4ConvMain() in src/ops/conv_bn_relu_fwd.ts (WGSL arrays and loops for
// the accumulators measured 2.9 vs 4.9 GFLOP/s: the arrays went to scratch memory); this file
// holds the header and the helpers it calls.
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
// Tile size, again (fwd-perf, llvmpipe, batch 128, inference, median of 5, one run; loads per
// ci step / vec4 FMAs): 8x8 16/64 11.4 and 9.7 GFLOP/s (32->32 at 28x28, 64->64 at 14x14);
// 12x16 28/192 14.6, 14.6; 16x16 32/256 15.2, 15.0; 20x16 15.7, 15.5; 24x16 14.7, 13.8;
// 8x32 12.2, 11.5; 12x32 14.7, 13.8; 16x32 16.5, 16.1; other runs put 24x32 and 32x32 level with
// 16x16. Spills grow with the tile, so past ~32 loads per step the gain flattens. 16x16 kept:
// same speed as the bigger ones, less waste when Cout % 16 != 0, faster compile, more
// workgroups for small batches. Same run vs the 8x8 kernel: inference 10.7 -> 13.9 (28x28) and
// 17.0 -> 22.9 GFLOP/s (14x14); train (with the one-pass bn_stats and 16-row apply) 10.7 -> 14.2
// and 12.3 -> 16.4.
//
// Bindings (in order): 0 result (N,Ho,Wo,Cout) as vec4; 1 x (N,H,W,Cin) NHWC as vec4 (Cin/4 per
//   pixel); 2 w (KH,KW,Cin,Cout) as vec4 (Cout/4 per (kh,kw,ci)); [3 scale, 4 shift (Cout) as vec4:
//   inference epilogue]; uniforms (xShape, wShape, outShape (element shapes), stride : vec2<i32>
//   (sh, sw), pad : vec2<i32> (top, left)).
// Grid: flat, workgroup (64,1,1); invocation id g = global_id.x + global_id.y * 64 * groups.x
//   -> channel block cb = g % B, row block rb = g / B, B = ceil(Cout / (4 * TILE_GROUPS)): rows
//   TILE_ROWS*rb.., channel groups TILE_GROUPS*cb.. (past Cout a group reads the next filter row
//   or a clamped out-of-bounds value and is never stored; rows past M repeat row M-1, not stored).
// Passes: 1. The program (src/ops/conv_bn_relu_fwd.ts) prepends `alias VT = vec4<f32>;` and
//   `writeOutput(index, c, v : VT)` (index and c in groups of 4 channels).
// Versions: v1 conv_bn_relu_fwd_v1.wgsl (one output per invocation); v2 conv_bn_relu_fwd.wgsl
//   (scalar loads, 4x4 block, any channel count); v3 this file (8x8 tile until the fwd-perf
//   change to 16x16), and conv_bn_relu_fwd_cout4.wgsl
//   (same tile, scalar x, for Cin % 4 != 0). Tried and dropped (same run, batch 128): the filter
//   slice staged in workgroup memory (one barrier per workgroup): 9.0 vs 13.1 GFLOP/s; stride-1
//   tiles along a row reusing x across kw (34 instead of 48 loads per kh step): within noise
//   (16.0 vs 14.9, 17.7 vs 16.2 GFLOP/s best-of-5).

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
