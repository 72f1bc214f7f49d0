// Options for tests that run tfjs: its backends keep GPU buffers, timers and pending ops alive
// between tests by design, so Deno's op and resource sanitizers would report them as leaks.
// (Tests that care about leaks count tensors and GPU bytes themselves.)

export const GPU_TEST = { sanitizeOps: false, sanitizeResources: false };
