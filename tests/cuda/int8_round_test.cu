// SageSLA's int8 rounding helper (src/cuda/int8_round.cuh) against the CPU emulation's rule (cpu::sagesla_quant_i8:
// roundf + clamp to +-127), value by value: exact ties k + 0.5, their float neighbours, both signs, values past the
// clamp, infinities, a random sweep.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cpu/sla_attention.h"
#include "cuda/cuda_common.cuh"
#include "cuda/int8_round.cuh"
#include "test_util.h"

namespace td {
namespace {

__global__ void round_kernel(const float* x, int n, int8_t* out, uint32_t* packed) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = int8_t(cuda::int8_half_away_bits(x[i]) & 0xffu);
  if (i * 4 + 3 < n)
    packed[i] = cuda::pack_low_bytes(cuda::int8_half_away_bits(x[4 * i]), cuda::int8_half_away_bits(x[4 * i + 1]),
                                     cuda::int8_half_away_bits(x[4 * i + 2]), cuda::int8_half_away_bits(x[4 * i + 3]));
}

std::vector<float> rounding_inputs() {
  std::vector<float> x;
  for (int k = -140; k <= 140; k++) {
    const float t = float(k) + 0.5f;
    x.insert(x.end(), {t, std::nextafter(t, 1e9f), std::nextafter(t, -1e9f), float(k)});
  }
  x.insert(x.end(), {0.f, -0.f, 1e-30f, -1e-30f, 0.49999997f, -0.49999997f, 127.49999f, 127.5f, -127.5f, 1e30f,
                     -1e30f, INFINITY, -INFINITY});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-130.f, 130.f);
  while (x.size() % 4 != 0 || x.size() < 8192) x.push_back(u(rng));
  return x;
}

// The CPU emulation's rule (its division by a scale of 1 is exact).
int8_t host_round(float x) { return cpu::sagesla_quant_i8(x, 1.f); }

TEST(CudaOps, Int8HalfAwayRoundingMatchesRoundf) {
  TD_SKIP_WITHOUT_CUDA();
  const std::vector<float> x = rounding_inputs();
  const int n = int(x.size());
  float* dx = nullptr;
  int8_t* dout = nullptr;
  uint32_t* dpacked = nullptr;
  TD_CUDA_CHECK(cudaMalloc(&dx, n * sizeof(float)));
  TD_CUDA_CHECK(cudaMalloc(&dout, n));
  TD_CUDA_CHECK(cudaMalloc(&dpacked, n));
  TD_CUDA_CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  round_kernel<<<(n + 255) / 256, 256>>>(dx, n, dout, dpacked);
  TD_CUDA_CHECK(cudaGetLastError());
  std::vector<int8_t> out(n);
  std::vector<uint32_t> packed(n / 4);
  TD_CUDA_CHECK(cudaMemcpy(out.data(), dout, n, cudaMemcpyDeviceToHost));
  TD_CUDA_CHECK(cudaMemcpy(packed.data(), dpacked, n, cudaMemcpyDeviceToHost));
  cudaFree(dx);
  cudaFree(dout);
  cudaFree(dpacked);
  int bad = 0;
  for (int i = 0; i < n; i++)
    if (out[i] != host_round(x[i]) && bad++ < 10)
      ADD_FAILURE() << "x = " << x[i] << ": got " << int(out[i]) << ", roundf gives " << int(host_round(x[i]));
  EXPECT_EQ(bad, 0);
  for (int i = 0; i < n / 4; i++) {
    uint32_t want = 0;
    for (int b = 0; b < 4; b++) want |= uint32_t(uint8_t(host_round(x[4 * i + b]))) << (8 * b);
    ASSERT_EQ(packed[i], want) << "word " << i;
  }
}

}  // namespace
}  // namespace td
