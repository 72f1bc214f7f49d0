// roofline_matmul: a tiled single-precision matmul C = A * B that measures the adapter's
// arithmetic ceiling (GFLOP/s = 2*M*N*K / time). Used only by `bench --suite roofline`.
//
// Written against tfjs-webgpu's generated prelude (see docs/tfjs-webgpu-custom-kernels.md):
//   binding 0: result : array<vec4<f32>>, C row-major [M, N]   (outputComponent 4)
//   binding 1: a      : array<vec4<f32>>, A row-major [M, K]   (variableComponents 4)
//   binding 2: b      : array<vec4<f32>>, B row-major [K, N]
//   uniforms: aShape = [M, K], bShape = [K, N]
// M, N and K must be multiples of 32 (the caller checks): there are no bounds checks, the point
// is the ceiling, not generality.
// Grid: workgroup 8x8 invocations, one 32x32 tile of C per workgroup (x -> N/32, y -> M/32);
// each invocation owns 4 rows x one vec4 of columns. K is walked in slabs of 32 staged in
// workgroup memory (2 x 32x32 f32 = 8 KiB).
//
// v1: scalar 16x16 workgroups, 64x64 tiles, 4x4 register block: 2.8 GFLOP/s on llvmpipe
//     (tf.matMul: 5.4) at 1024^3.
// v2: vec4 loads/stores and fma, 8x8 workgroups, 32x32 tiles (the layout of tfjs's
//     MatMulPackedVec4Program, which was the fastest matmul we had on llvmpipe).

var<workgroup> aTile : array<array<vec4<f32>, 8>, 32>;  // [row][k / 4]
var<workgroup> bTile : array<array<vec4<f32>, 8>, 32>;  // [k][col / 4]

fn main() {
  let K4 = uniforms.aShape[1] / 4;
  let N4 = uniforms.bShape[1] / 4;
  let tx = i32(localId.x);
  let ty = i32(localId.y);
  let row0 = i32(workgroupId.y) * 32 + ty * 4;
  let col4 = i32(workgroupId.x) * 8 + tx;

  var acc : array<vec4<f32>, 4>;
  for (var k0 = 0; k0 < K4; k0 = k0 + 8) {
    // Each invocation stages 4 vec4 of A (its rows, one k-quad) and 4 vec4 of B.
    for (var i = 0; i < 4; i = i + 1) {
      aTile[ty * 4 + i][tx] = a[(row0 + i) * K4 + k0 + tx];
      bTile[ty * 4 + i][tx] = b[(k0 * 4 + ty * 4 + i) * N4 + col4];
    }
    workgroupBarrier();
    for (var kq = 0; kq < 8; kq = kq + 1) {
      let b0 = bTile[kq * 4 + 0][tx];
      let b1 = bTile[kq * 4 + 1][tx];
      let b2 = bTile[kq * 4 + 2][tx];
      let b3 = bTile[kq * 4 + 3][tx];
      for (var i = 0; i < 4; i = i + 1) {
        let av = aTile[ty * 4 + i][kq];
        acc[i] = fma(b0, vec4<f32>(av.x), acc[i]);
        acc[i] = fma(b1, vec4<f32>(av.y), acc[i]);
        acc[i] = fma(b2, vec4<f32>(av.z), acc[i]);
        acc[i] = fma(b3, vec4<f32>(av.w), acc[i]);
      }
    }
    workgroupBarrier();
  }
  for (var i = 0; i < 4; i = i + 1) {
    result[(row0 + i) * N4 + col4] = acc[i];
  }
}
