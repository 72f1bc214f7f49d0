// The chunked grid of the batch-norm passes of the fused conv + BN + ReLU op: forward statistics
// and apply (conv_bn_relu_fwd.ts), backward reduce and dz (conv_bn_relu_bwd.ts). A workgroup is
// 8 x 8 invocations: x = 8 adjacent channel groups (4 channels each, vec4, when Cout % 4 == 0),
// y = 8 row lanes; workgroupId.x picks the block of 8 channel groups, workgroupId.y a chunk of
// `rowsPerChunk` consecutive rows (M = N*Ho*Wo rows of Cout channels), each row lane one
// contiguous eighth of them (src/ops/wgsl/bn_chunk_rows.wgsl). The first pass of each
// pair writes one partial per (chunk, channel); the second merges all chunks' partials in every
// workgroup, so the grid stays small: about TARGET_WORKGROUPS workgroups, enough to fill
// llvmpipe's threads, few enough that the per-workgroup merge stays a small part of the pass.

/** Workgroups the chunked passes aim for. */
export const TARGET_WORKGROUPS = 64;

/** Fewest rows a chunk gets (fewer only when M itself is smaller). */
const MIN_ROWS_PER_CHUNK = 64;

/**
 * Rows one workgroup covers at most: its 8 row lanes then loop 8192 times, far below the 65,535
 * iterations after which llvmpipe silently stops a loop.
 */
export const MAX_ROWS_PER_CHUNK = 8 * 8192;

/**
 * Splits `total` items into chunks so that about `target` chunks exist, each >= `minChunk` and
 * <= MAX_ROWS_PER_CHUNK items; `count` chunks of `per` (the last one shorter or equal).
 */
export function chunking(total: number, target: number, minChunk: number) {
  const chunks = Math.max(
    1,
    Math.min(target, Math.floor(total / minChunk)),
    Math.ceil(total / MAX_ROWS_PER_CHUNK),
  );
  const per = Math.ceil(total / chunks);
  return { per, count: Math.ceil(total / per) };
}

/** The grid of a batch-norm pass pair over `rows` x `outC`. */
export interface BnChunkGrid {
  /** Lanes own 4 channels (vec4 bindings): Cout % 4 == 0. */
  vec4: boolean;
  /** Blocks of 8 channel groups (workgroupId.x). */
  channelBlocks: number;
  rowsPerChunk: number;
  /** Row chunks (workgroupId.y): also the number of partials the second pass merges. */
  chunks: number;
  workgroupSize: [number, number, number];
  dispatch: [number, number, number];
}

export function bnChunkGrid(rows: number, outC: number): BnChunkGrid {
  const vec4 = outC % 4 === 0;
  const channelBlocks = Math.ceil(outC / (vec4 ? 32 : 8));
  const c = chunking(rows, Math.ceil(TARGET_WORKGROUPS / channelBlocks), MIN_ROWS_PER_CHUNK);
  // A multiple of 8: each row lane takes a contiguous eighth (src/ops/wgsl/bn_chunk_rows.wgsl).
  const rowsPerChunk = Math.ceil(c.per / 8) * 8;
  const chunks = Math.ceil(rows / rowsPerChunk);
  return {
    vec4,
    channelBlocks,
    rowsPerChunk,
    chunks,
    workgroupSize: [8, 8, 1],
    dispatch: [channelBlocks, chunks, 1],
  };
}
