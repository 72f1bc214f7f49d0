// roofline_matmul: C = A * B in single precision, to measure the adapter's arithmetic ceiling
// (GFLOP/s = 2*M*N*K / time). Used only by `bench --suite roofline`.
//
// Written against tfjs-webgpu's generated prelude (see docs/tfjs-webgpu-custom-kernels.md):
//   binding 0: result : array<vec4<f32>>, C row-major [M, N]   (outputComponent 4)
//   binding 1: a      : array<vec4<f32>>, A row-major [M, K]   (variableComponents 4)
//   binding 2: b      : array<vec4<f32>>, B row-major [K, N]
//   uniforms: aShape = [M, K], bShape = [K, N]
// M and N must be multiples of 8, K of 4 (the caller checks): no bounds checks in the K loop.
// Grid: flat, workgroup (64,1,1); invocation g -> column pair cp = g % (N/8) (two vec4 of C
// columns), row block rb = g / (N/8) (8 rows). Adjacent lanes share rows, so their A loads hit
// the same addresses and their B loads are contiguous. 8x8 outputs = 16 vec4 accumulators.
// No workgroup memory: on llvmpipe (lanes = SIMD lanes of a CPU core) barriers are costly and
// shared-memory loads take the same per-lane path as storage loads.
//
// v1: scalar 16x16 workgroups, 64x64 shared-memory tiles, 4x4 register block: 2.8 GFLOP/s on
//     llvmpipe at 1024^3 (tf.matMul 5.4).
// v2: vec4 loads and fma, 8x8 workgroups, 32x32 shared-memory tiles (tfjs's
//     MatMulPackedVec4Program layout): 2.8-3.6 at 16384x576x64 under load (tf.matMul 3.0-4.2).
// v3: this file, no shared memory, 8x8 register block (like our conv kernels' best tile):
//     5.5-6.3 in the same runs, where a 4x4 register block gave 5.5-6.1.

fn main(index : i32) {
  let M = uniforms.aShape[0];
  let K4 = uniforms.aShape[1] / 4;
  let N4 = uniforms.bShape[1] / 4;
  let pairs = N4 / 2;
  let c0 = (index % pairs) * 2;
  let row0 = (index / pairs) * 8;
  if (row0 >= M) {
    return;
  }
  var accL : array<vec4<f32>, 8>;
  var accR : array<vec4<f32>, 8>;
  for (var kq = 0; kq < K4; kq = kq + 1) {
    let k = kq * 4;
    let bL0 = b[(k + 0) * N4 + c0];
    let bL1 = b[(k + 1) * N4 + c0];
    let bL2 = b[(k + 2) * N4 + c0];
    let bL3 = b[(k + 3) * N4 + c0];
    let bR0 = b[(k + 0) * N4 + c0 + 1];
    let bR1 = b[(k + 1) * N4 + c0 + 1];
    let bR2 = b[(k + 2) * N4 + c0 + 1];
    let bR3 = b[(k + 3) * N4 + c0 + 1];
    for (var i = 0; i < 8; i = i + 1) {
      let av = a[(row0 + i) * K4 + kq];
      accL[i] = fma(bL0, vec4<f32>(av.x), accL[i]);
      accL[i] = fma(bL1, vec4<f32>(av.y), accL[i]);
      accL[i] = fma(bL2, vec4<f32>(av.z), accL[i]);
      accL[i] = fma(bL3, vec4<f32>(av.w), accL[i]);
      accR[i] = fma(bR0, vec4<f32>(av.x), accR[i]);
      accR[i] = fma(bR1, vec4<f32>(av.y), accR[i]);
      accR[i] = fma(bR2, vec4<f32>(av.z), accR[i]);
      accR[i] = fma(bR3, vec4<f32>(av.w), accR[i]);
    }
  }
  for (var i = 0; i < 8; i = i + 1) {
    result[(row0 + i) * N4 + c0] = accL[i];
    result[(row0 + i) * N4 + c0 + 1] = accR[i];
  }
}
