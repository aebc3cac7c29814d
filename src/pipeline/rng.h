// The noise generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) with a
// Box-Muller transform. Counter-based, so any element of any draw can be computed independently and the same numbers
// come out on every device and thread count: element j of draw d for seed s is a pure function of (s, d, j).
//
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (j/4 & 0xffffffff, j/4 >> 32, draw, 0)       -> four 32-bit words w0..w3
//   u_a = (w_{2p} + 1) * 2^-32 in (0, 1], u_b = w_{2p+1} * 2^-32 in [0, 1), for the pair p = 0, 1
//   z_{2p} = sqrt(-2 ln u_a) cos(2 pi u_b),   z_{2p+1} = sqrt(-2 ln u_a) sin(2 pi u_b)      (math in double)
//   element j = z_{j % 4}, rounded to f32.
//
// The pipeline numbers its draws: draw 0 is the initial latent noise of sample 0, draw 1+k the re-noising after step k;
// sample b of --num-samples uses draws offset by b * 1024 (see noise_draw()). The numbers are not PyTorch's (its CUDA
// randn uses Philox with a different counter layout and transform), so videos are reproducible here but not bit-equal
// to the Python scripts' for the same seed.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace td {
namespace pipeline {

// One Philox4x32-10 block.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Fills out[0..n) with standard normal numbers for (seed, draw), elements [first, first + n) of that draw.
// `parallel`: split across the thread pool. A draw made on a background thread passes false: the pool runs one
// region at a time, so it would hold up the pool work of the thread that drives the network.
void normal_fill(uint64_t seed, uint64_t draw, uint64_t first, float* out, size_t n, bool parallel = true);

// A host f32 tensor of standard normals of the given shape (element j = element j of the draw, row-major).
Tensor randn(const Shape& shape, uint64_t seed, uint64_t draw, bool parallel = true);

// Draw index for a given sample of the batch and a given use (0 = initial noise, 1 + k = re-noise after step k).
inline uint64_t noise_draw(int sample, int use) { return uint64_t(sample) * 1024u + uint64_t(use); }

}  // namespace pipeline
}  // namespace td
