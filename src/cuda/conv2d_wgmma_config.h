// Tile and pipeline choices of the sm_90a wgmma implicit-GEMM conv (conv2d_wgmma.cu), used by the VAE.
#pragma once

namespace td {
namespace cuda {
namespace conv2d_wgmma_config {
// The wide VAE convs on our own wgmma implicit GEMM instead of cuDNN (H100: ~400-470 TFLOP/s there): the ring convs
// with 96 or 192 outputs (288->96 @480x832, 576->192 @240x416 in the decoder), the 2x2 sub-pixel up-sampling convs
// and the 3x3x3 causal convs (time taps as K chunks reading their frames in place). A CTA computes R output rows x
// kRingTileW pixels for NT outputs; one pipeline stage holds a kRingChunk-channel slice of the input halo ((R + k - 1)
// rows x (kRingTileW + k - 1) px) and of all k x k taps' weights. The halo is stored unswizzled, one 16-byte 8-channel
// group per pixel, pixels contiguous: the A operand of tap (dy, dx) is then the same layout started
// (dy * (kRingTileW + k - 1) + dx) pixels later, so all taps read one staged halo (wgmma's swizzled layouts cannot be
// shifted by one row). One producer warpgroup gathers the halo with cp.async (zero-fill = the conv's padding) and the
// pre-packed weights with one bulk copy; kRingConsumers warpgroups each own RW output rows (one m64 x NT accumulator
// set per row: at most ~192 fp32 registers).
constexpr int kRingTileW = 64;       // output pixels per row = wgmma M
constexpr int kRingChunk = 16;       // input channels per stage = one k16 wgmma per tap and row
constexpr int kRingConsumers = 2;
constexpr int kRingThreads = 128 * (1 + kRingConsumers);
constexpr int kRingProducerRegs = 40, kRingConsumerRegs = 232;  // 128 * 40 + 256 * 232 <= 64 Ki registers
// Tile variants: NT outputs per CTA (96 or 192, a divisor of O), RW rows per consumer warpgroup (one m64 x NT fp32
// accumulator set per row: RW * NT / 2 registers), S stages of (R + 2) * 66 * 32 + 9 * NT * 32 bytes (3x3, R = 2 RW).
// TD_VAE_RING_TILE=n96r8|n96r4|n192r4 overrides the per-O default below.
// Epilogue scratch after the stages, per consumer warp: 16 pixels x 96 bf16 outputs, rows padded to 208 bytes so the
// 8 rows of each stmatrix / 16-byte read land in different banks.
constexpr int kScratchRow = 96 * 2 + 16;
constexpr int kScratchWarp = 16 * kScratchRow;
enum class RingTile { N96R8, N96R4, N192R4 };
constexpr int kRingStagesN96R8 = 4;    // 4 x 48.8 KB
constexpr int kRingStagesN96R4 = 5;    // 5 x 40.3 KB
constexpr int kRingStagesN192R4 = 3;   // 3 x 68.0 KB
// H100, `bench vae --convs --tiles` with the shared-memory epilogue (ms): ring 288->96 @480x832 n96r8 0.297, n96r4
// 0.328; ring 576->192 @240x416 n192r4 0.349, n96r8 / n96r4 0.367; causal 384->384 @120x208 x2 n192r4 0.68-0.70, n96r8
// 0.69-0.72, n96r4 0.81-0.86; causal 384 @60x104 x1 n96r4 0.117-0.120, n192r4 0.17 (60 tiles for 132 SMs).
constexpr RingTile kRingTile96 = RingTile::N96R8;
constexpr RingTile kRingTile192 = RingTile::N192R4;  // O = 192 and the causal O = 384
constexpr int kSmallGridWaves = 2;  // fewer n192r4 tiles than this many per SM: n96r4 instead
// The 2x2 sub-pixel up-sampling convs (O = 4 x 96 or 4 x 192; TD_VAE_SUBPIXEL_TILE overrides).
constexpr RingTile kSubpixelTile = RingTile::N192R4;
}  // namespace conv2d_wgmma_config
}  // namespace cuda
}  // namespace td
