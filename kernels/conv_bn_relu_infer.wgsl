// conv_bn_relu_infer — inference epilogue: the ConvBnReluInfer kernel is the forward conv main
// loop (conv_bn_relu_fwd.wgsl, or conv_bn_relu_fwd_v1.wgsl under FMNIST_NAIVE_KERNELS=1) with
// this epilogue, so inference is ONE pass: y = relu(conv(x, w) * scale[c] + shift[c]), batch norm
// folded on the host into scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
// Bindings: result (N,Ho,Wo,Cout) f32 = y; scale (Cout) f32 at binding 3; shift (Cout) f32 at 4.

fn writeOutput(index : i32, c : i32, v : f32) {
  result[index] = max(v * scale[c] + shift[c], 0.0);
}
