// Tile choices for the dense FlashAttention-2-style kernel (src/cuda/attention.cu), per head_dim.
//
// Why these numbers (H100, mma.sync m16n8k16):
//  - Each warp owns kBlockM / kWarps = 32 query rows (two m16 tiles). Every warp reads the whole K and V tile from
//    shared memory through ldmatrix, so rows per warp set the ratio of tensor-core work to shared-memory traffic:
//    16 rows per warp leaves the kernel bound by shared-memory bandwidth; 32 rows halves that traffic per FLOP.
//    64 rows would need 256 fp32 accumulators per thread for d=128 and spill.
//  - d=128: 128 x 64 tiles, 4 warps. Registers per thread: O 128 + S 64 fp32, which reaches the 255 cap: ptxas
//    spills 16 bytes (nvcc 13.0; 28 before the lazy rescale). Before, the SASS showed one LDL at the top of each
//    64-key tile and four in the next-tile address setup, against 256 HMMAs per tile, none inside the MMA/softmax
//    sequences; every spill-free alternative measured slower (H100, 2026-11-25, docs/perf.md: 128x32 +5%,
//    8 warps +14%).
//    Shared memory: Q 32 KiB + 2 stages x (K 16 + V 16) KiB = 96 KiB, so two blocks (8 warps) fit on one SM and
//    hide each other's softmax and loads.
//  - d=64: same tile shape; half the registers and shared memory (48 KiB).
//  - kBlockN = 64 keys per step: a 32-key step doubles the barrier/softmax overhead per FLOP; 128 keys would need
//    128 S registers per thread.
#pragma once

namespace td {
namespace cuda {

template <int kHeadDim>
struct AttentionTile;

template <>
struct AttentionTile<128> {
  static constexpr int kBlockM = 128;  // query rows per block
  static constexpr int kBlockN = 64;   // keys per pipeline step
  static constexpr int kWarps = 4;
  static constexpr bool kSplitWait = false;  // true: wait for K and V of a tile separately (see attention.cu)
  static constexpr int kMinBlocks = 2;       // blocks per SM the registers are budgeted for (__launch_bounds__)
};

template <>
struct AttentionTile<64> {
  static constexpr int kBlockM = 128;
  static constexpr int kBlockN = 64;
  static constexpr int kWarps = 4;
  static constexpr bool kSplitWait = false;
  static constexpr int kMinBlocks = 2;
};

// Every (head_dim, block_m, block_n, warps, split_wait, min_blocks) compiled in. The defaults above must be listed; the others exist so
// `turbodiff bench attention` can time the alternatives on the target GPU (and tests check them all) before a
// default is changed. 128x32 trades register pressure (no spills at d=128) for twice the barriers per FLOP;
// 8-warp variants give 16 rows per warp (more warps to hide latency, more shared-memory traffic per FLOP).
// min_blocks: 2 blocks of 4 warps cap registers at 255, 2 blocks of 8 warps at 128 (the 8-warp 128x64 spills 4
// bytes there; with min_blocks 1 and no spill it measured slower still, 22.2 vs 19.8 ms, and was dropped).
// 256x64 with 8 warps and min_blocks 1 keeps 32 rows per warp and halves the K/V traffic from L2 per query (one
// 128 KiB block per SM); no spill since the lazy rescale (112 bytes before). With lazy rescaling it measured 0.7%
// (L=32,760) and 3% (L=75,600) faster than the default for self-attention, within this card's run-to-run spread,
// and 15-20% slower for cross-attention (512 keys: fewer, larger blocks), so the default stays 128x64.
#define TD_ATTENTION_VARIANTS(X) \
  X(128, 128, 64, 4, 0, 2)       \
  X(128, 128, 64, 4, 1, 2)       \
  X(128, 128, 32, 4, 0, 2)       \
  X(128, 128, 32, 4, 1, 2)       \
  X(128, 128, 64, 8, 0, 2)       \
  X(128, 256, 64, 8, 0, 1)       \
  X(128, 64, 64, 4, 0, 2)        \
  X(64, 128, 64, 4, 0, 2)        \
  X(64, 128, 64, 4, 1, 2)        \
  X(64, 128, 32, 4, 0, 2)        \
  X(64, 128, 64, 8, 0, 2)

// Lazy softmax rescaling (attention.cu): the running row max moves only when a tile's scores exceed it by more
// than this many powers of two, so P stays <= 2^8 (no precision loss in fp32 or bf16) and the O rescale runs on
// few tiles. 0 rescales whenever the max grows (still skipping tiles where it does not).
constexpr float kAttentionRescaleSlackLog2 = 8.f;

}  // namespace cuda
}  // namespace td
