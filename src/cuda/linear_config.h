// Choices for the cuBLASLt linear (src/cuda/linear.cu).
#pragma once

namespace td {
namespace cuda {
namespace linear_config {

// cuBLASLt's GELU epilogue is the tanh approximation (the same formula as PyTorch's approximate='tanh'); the test
// LinearGeluEpilogueIsTanh checks it on the device. Set to false to run bias in the GEMM and GELU as a separate
// kernel instead (one extra pass over the output).
constexpr bool kUseCublasGelu = true;

// Heuristic candidates requested per shape. Shapes of at least kAutotuneMinFlops are autotuned on first use: every
// candidate runs 1 + kAutotuneIters times and the fastest is cached (the heuristic's first pick is not always the
// fastest kernel); smaller shapes take the first candidate.
constexpr int kHeuristicCandidates = 8;
constexpr double kAutotuneMinFlops = 2e9;
constexpr int kAutotuneIters = 3;

// cuBLASLt has no fused bias epilogue for a bf16 output with an f32 bias; the alternative is a separate pass over
// the output (+40-50% time at the DiT's shapes on H100). With this on, such a bias is rounded to a bf16 copy per
// call and the fused bf16-bias epilogue runs. The extra error is at most half a bf16 ulp of the bias, no larger than
// the bf16 output rounding that follows (and PyTorch's bf16 Wan adds a bf16 bias too).
constexpr bool kRoundF32BiasForFusion = true;

}  // namespace linear_config
}  // namespace cuda
}  // namespace td
