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
// Naive fallback kernel: threads per block.
constexpr int kNaiveThreads = 256;
}  // namespace conv3d_config
}  // namespace cuda
}  // namespace td
