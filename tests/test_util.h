// Shared helpers for the test suite: deterministic random tensors, error metrics, guarded device outputs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"

namespace td {
namespace test {

// Random normal host f32 tensor (mean, std), seeded so failures reproduce. Never all zeros.
inline Tensor randn(const Shape& shape, uint64_t seed, float stdev = 1.0f, float mean = 0.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(mean, stdev);
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = d(rng);
  return t;
}

inline Tensor randint8(const Shape& shape, uint64_t seed, int lo = -128, int hi = 127) {
  Tensor t = Tensor::empty(shape, DType::I8);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  int8_t* p = t.ptr<int8_t>();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = int8_t(d(rng));
  return t;
}

// Normalised mean squared error: mse(a, ref) / mse(ref, 0), as ggml's test-backend-ops. NaN/Inf -> +inf.
inline double nmse(const Tensor& a, const Tensor& ref) {
  Tensor x = a.to_f32_host().contiguous(), y = ref.to_f32_host().contiguous();
  EXPECT_EQ(x.shape(), y.shape());
  double num = 0, den = 0;
  for (int64_t i = 0; i < y.numel(); i++) {
    double xv = x.ptr<float>()[i], yv = y.ptr<float>()[i];
    if (!std::isfinite(xv) || !std::isfinite(yv)) return INFINITY;
    num += (xv - yv) * (xv - yv);
    den += yv * yv;
  }
  return den > 0 ? num / den : num;
}

// Relative L2 error ||a - ref|| / ||ref||.
inline double rel_l2(const Tensor& a, const Tensor& ref) { return std::sqrt(nmse(a, ref)); }

inline double max_abs_diff(const Tensor& a, const Tensor& ref) {
  Tensor x = a.to_f32_host().contiguous(), y = ref.to_f32_host().contiguous();
  double m = 0;
  for (int64_t i = 0; i < y.numel(); i++) m = std::max(m, double(std::fabs(x.ptr<float>()[i] - y.ptr<float>()[i])));
  return m;
}

#define TD_SKIP_WITHOUT_CUDA() \
  do {                         \
    if (!::td::cuda_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

}  // namespace test
}  // namespace td
