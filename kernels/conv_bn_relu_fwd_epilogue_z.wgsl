// conv_bn_relu_fwd_epilogue_z — training-mode epilogue of the forward conv kernels
// (conv_bn_relu_fwd*.wgsl): stores the pre-normalisation z as is.
// VT is f32 (scalar kernels) or vec4<f32> (kernels for Cout % 4 == 0: index and c count groups of
// 4 channels; one store per 4 outputs, and stores, like loads, cost a loop over the SIMD lanes on
// llvmpipe). Bindings: result (N,Ho,Wo,Cout) as VT = z. `c` is unused here.

fn writeOutput(index : i32, c : i32, v : VT) {
  result[index] = v;
}
