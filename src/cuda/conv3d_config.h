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
// Naive fallback kernel: threads per block.
constexpr int kNaiveThreads = 256;
}  // namespace conv3d_config
}  // namespace cuda
}  // namespace td
