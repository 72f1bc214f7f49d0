// Registers tfjs's gradient functions (conv2d, maxPool, matMul, ...) for autodiff.
//
// tfjs-core's Node bundle registers none, and its `dist/register_all_gradients.js` cannot be
// imported by Deno (extensionless relative imports inside the package). The union package's Node
// bundle carries the same gradient configs compiled against the shared tfjs-core instance, and
// registers them on import. Gradient and kernel registries are process-global in tfjs, so this
// one side-effect import is enough for every module that uses `@tensorflow/tfjs-core`.
import "@tensorflow/tfjs";
