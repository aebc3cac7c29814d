// Tile and architecture choices for the W8A8 GEMM kernels (src/cuda/w8a8_gemm.cu). One K tile is one 128-wide
// quantization block, so the int32 -> fp32 dequantization happens exactly once per main-loop iteration.
#pragma once

namespace td {
namespace cuda {
namespace w8a8cfg {

// mma.sync path (sm_80 / 89 / 90 / 120): m16n8k32 s8, ldmatrix from a 128-byte-row XOR-swizzled smem tile.
constexpr int kBM = 128, kBN = 128, kBK = 128;  // kBN = weight scale block: one weight scale per CTA per K tile
constexpr int kWarpsM = 2, kWarpsN = 4;         // 8 warps; warp tile 64 x 32 (4 x 4 mma tiles)
constexpr int kThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWM = kBM / kWarpsM, kWN = kBN / kWarpsN;
// 32 KiB per stage. 3 stages = 96 KiB: fits sm_89/sm_120 (99 KiB opt-in) as well as sm_80/sm_90.
constexpr int kStages = 3;
constexpr int kStageBytes = (kBM + kBN) * kBK;
constexpr int kSmemBytes = kStages * kStageBytes;
// Tiles along M walked together before moving to the next N tile (keeps the A panel and the B panel in L2).
constexpr int kGroupM = 8;

// wgmma path (sm_90a): same 128x128x128 CTA tile and smem layout (the 128-byte XOR swizzle above is exactly
// wgmma's SWIZZLE_128B K-major layout), two consumer warpgroups of 64 x 128 each (64 int32 + 64 fp32 accumulators
// per thread: a 64 x 256 warpgroup tile would need 256 registers for the two accumulator sets). All 256 threads
// issue cp.async for the next stages while the tensor cores run. 4 stages = 128 KiB (+1 KiB alignment slack).
constexpr int kWgStages = 4;
constexpr int kWgSmemBytes = kWgStages * kStageBytes + 1024;
// "wgmma2": two int32 accumulator sets alternate so the fp32 fold of block kb-1 overlaps the MMAs of block kb
// (192 accumulator registers per thread). 5 stages = 160 KiB, prefetch distance 3.
constexpr int kWg2Stages = 5;
constexpr int kWg2SmemBytes = kWg2Stages * kStageBytes + 1024;
// What TD_W8A8_KERNEL=auto runs on sm_90 (change after `turbodiff bench gemm --kernel all`).
constexpr const char* kAutoSm90Kernel = "wgmma";

// The activation-quant / fused-norm kernels: one CTA per row, 4 channels per thread per chunk.
constexpr int kRowThreads = 128;
constexpr int kRowMaxChunks = 16;  // 128 threads x 16 chunks x 4 = rows up to 8192 channels

}  // namespace w8a8cfg
}  // namespace cuda
}  // namespace td
