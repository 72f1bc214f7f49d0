// conv_bn_relu_fwd_epilogue_z — training-mode epilogue of the forward conv kernels
// (conv_bn_relu_fwd.wgsl, conv_bn_relu_fwd_v1.wgsl): stores the pre-normalisation z as is.
// Bindings: result (N,Ho,Wo,Cout) f32 = z. `c` (output channel) is unused here.

fn writeOutput(index : i32, c : i32, v : f32) {
  result[index] = v;
}
