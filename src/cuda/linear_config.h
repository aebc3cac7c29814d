// Choices for the cuBLASLt linear (src/cuda/linear.cu).
#pragma once

namespace td {
namespace cuda {
namespace linear_config {

// cuBLASLt's GELU epilogue is the tanh approximation (the same formula as PyTorch's approximate='tanh'); the test
// LinearGeluEpilogueIsTanh checks it on the device. Set to false to run bias in the GEMM and GELU as a separate
// kernel instead (one extra pass over the output).
constexpr bool kUseCublasGelu = true;

// Heuristic candidates requested per shape; the first one that cuBLASLt accepts is cached.
constexpr int kHeuristicCandidates = 8;

}  // namespace linear_config
}  // namespace cuda
}  // namespace td
