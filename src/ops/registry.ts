// Registers our custom ops (kernels for webgpu and cpu, and their gradients) with tfjs.
// Importing this module once is enough; `src/tf/setup.ts` does it.
import "./conv_bn_relu/conv_bn_relu_fwd.ts";
import "./conv_bn_relu/conv_bn_relu_grad.ts";
import "./conv_backprop/conv_backprop.ts";
import "./conv_bias_relu/conv_bias_relu.ts";
import "./adam_step/adam_step_webgpu.ts";
import "./softmax_xent/softmax_xent.ts";
import "./dense_bias_act/dense_bias_act.ts";
import "./dropout/dropout.ts";
import "./max_pool2/max_pool2.ts";
import "./bias_act_grad/bias_act_grad.ts";
import "./conv_bias_relu_pool2/conv_bias_relu_pool2.ts";
