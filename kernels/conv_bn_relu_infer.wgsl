// conv_bn_relu_infer — inference epilogue: the ConvBnReluInfer kernel is the forward conv main
// loop (conv_bn_relu_fwd*.wgsl, or conv_bn_relu_fwd_v1.wgsl under FMNIST_NAIVE_KERNELS=1) with
// this epilogue, so inference is ONE pass: y = relu(conv(x, w) * scale[c] + shift[c]), batch norm
// folded on the host into scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
// VT is f32 or vec4<f32> (Cout % 4 == 0: index and c count groups of 4 channels).
// Bindings: result (N,Ho,Wo,Cout) as VT = y; scale (Cout) as VT at binding 3; shift at 4.

fn writeOutput(index : i32, c : i32, v : VT) {
  result[index] = max(v * scale[c] + shift[c], VT(0.0));
}
