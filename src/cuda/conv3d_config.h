// Choices for the VAE conv3d on CUDA (see conv3d.cu).
#pragma once

#include <cstddef>

namespace td {
namespace cuda {
namespace conv3d_config {
// Workspace cap for cuDNN algorithms. The big decoder convs (96-192 ch at 480x832) are where implicit-GEMM variants
// want workspace; 512 MiB keeps the peak under the official decoder's 4.4 GiB while allowing the fast ones.
constexpr size_t kMaxWorkspace = size_t(512) << 20;
// Number of candidate algorithms cuDNN's FindEx times per distinct shape (cached for the process lifetime).
constexpr int kFindCandidates = 8;
// TD_VAE_CONV=auto: problems with at most this many input and output channels run as per-time-tap 2-D convs, the
// rest as 3-D convs. H100 + cuDNN 9.14, 81x480x832 decode (ms per decode, 3-D vs 2-D taps): 96->96 @480x832 469 vs
// 272; 192->192 @240x416 207 vs 328; 384->384 @120x208 86 vs 115; 3x1x1 time convs 10 vs 36.
constexpr long kTaps2dMaxChannels = 128;
// Frame rings (vae::ring_ok): causal 3x3x3 convs with at most this many input/output channels run as one 2-D conv
// over [H, W, 3C] per frame. H100, 81x480x832 decode (docs/perf.md): rings at 96+192 ch 696 ms / 3.96 GiB, also at
// 384 ch 694 ms / 4.48 GiB (over the official decoder's 4.4 GiB: a 384-ch ring frame costs more than it saves), none
// 714 ms / 3.86 GiB.
constexpr long kRingMaxChannels = 192;
// Narrow ring convs (the decoder head: 96 x 3 ch -> 3 outputs padded to 8) run on our own mma.sync kernel: cuDNN
// spends 0.36 ms a 480x832 frame there (~770 GB/s: a GEMM with N = 8), the kernel reads each halo tile once.
// A CTA computes kHeadRows x kHeadCols output pixels (one warp per 32 of them: two m16n8k16 tiles) for all 8
// outputs, staging the halo one ring slot (C channels) at a time.
constexpr int kHeadOutputs = 8;
constexpr int kHeadRows = 8, kHeadCols = 32;
constexpr int kHeadThreads = 32 * kHeadRows * kHeadCols / 32;
constexpr int kHeadMaxSlotChannels = 96;  // halo (10 x 34 px x 96 ch) + all weights fit twice per SM
// Wide ring convs (96 or 192 outputs, e.g. 288->96 @480x832 and 576->192 @240x416 in the decoder) on our own sm_90a
// wgmma implicit GEMM (conv3d_ring_sm90.cu) instead of cuDNN (H100: ~440-460 TFLOP/s there). A CTA computes R output
// rows x kRingTileW pixels for all O outputs; one pipeline stage holds a kRingChunk-channel slice of the input halo
// ((R + 2) rows x (kRingTileW + 2) px) and of all 9 taps' weights. The halo is stored unswizzled, one 16-byte
// 8-channel group per pixel, pixels contiguous: the A operand of tap (dy, dx) is then the same layout started
// (dy * (kRingTileW + 2) + dx) pixels later, so all 9 taps read one staged halo (wgmma's swizzled layouts cannot be
// shifted by one row). One producer warpgroup gathers with cp.async (zero-fill = the conv's padding); kRingConsumers
// warpgroups each own kRowsPerWarpgroup output rows (one m64 x O accumulator set per row: at most ~192 fp32 registers).
constexpr int kRingTileW = 64;       // output pixels per row = wgmma M
constexpr int kRingChunk = 16;       // input channels per stage = one k16 wgmma per tap and row
constexpr int kRingConsumers = 2;
constexpr int kRingThreads = 128 * (1 + kRingConsumers);
constexpr int kRingProducerRegs = 40, kRingConsumerRegs = 232;  // 128 * 40 + 256 * 232 <= 64 Ki registers
// Tile variants: NT outputs per CTA (96 or 192, a divisor of O), RW rows per consumer warpgroup (one m64 x NT fp32
// accumulator set per row: RW * NT / 2 registers), S stages of (R + 2) * 66 * 32 + 9 * NT * 32 bytes (R = 2 RW).
// TD_VAE_RING_TILE=n96r8|n96r4|n192r4 overrides the per-O default below.
enum class RingTile { N96R8, N96R4, N192R4 };
constexpr int kRingStagesN96R8 = 4;   // 4 x 48.8 KB
constexpr int kRingStagesN96R4 = 5;   // 5 x 40.3 KB
constexpr int kRingStagesN192R4 = 3;  // 3 x 68.0 KB
constexpr RingTile kRingTile96 = RingTile::N96R8;
constexpr RingTile kRingTile192 = RingTile::N96R4;
// The 2x2 sub-pixel up-sampling convs (O = 4 x 96 or 4 x 192; TD_VAE_SUBPIXEL_TILE overrides).
constexpr RingTile kSubpixelTile = RingTile::N192R4;
// Naive fallback kernel: threads per block.
constexpr int kNaiveThreads = 256;
}  // namespace conv3d_config
}  // namespace cuda
}  // namespace td
