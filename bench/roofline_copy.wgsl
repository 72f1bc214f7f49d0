// roofline_copy: streams a large buffer through the GPU to measure the adapter's memory bandwidth
// ceiling (GB/s = bytes read + bytes written / time). Used only by `bench --suite roofline`.
//
// Written against tfjs-webgpu's generated prelude (see docs/tfjs-webgpu-custom-kernels.md):
//   binding 0: result : array<vec4<f32>>  (outputComponent 4)
//   binding 1: x      : array<vec4<f32>>  (same length)
//   uniforms.size = element count / 4 (the number of vec4s)
// Layout: flat. Grid: one vec4 per invocation per step, grid-stride loop so the dispatch stays
// under the 65535-workgroup limit for any buffer size (`uniforms.stride` = total invocations).
// A multiply-add keeps the compiler from turning the loop into a plain memcpy it might skip.
//
// v1: plain vec4 grid-stride copy.

fn main(index : i32) {
  var i = index;
  loop {
    if (i >= uniforms.size) {
      break;
    }
    result[i] = x[i] * uniforms.scale;
    i = i + uniforms.stride;
  }
}
