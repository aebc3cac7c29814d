#include "pipeline/rng.h"

#include <cmath>

#include "core/threads.h"

namespace td {
namespace pipeline {

namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  *lo = uint32_t(p);
}
}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c[0], &hi0, &lo0);
    mulhilo(kM1, c[2], &hi1, &lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

static void normals_of_block(uint64_t seed, uint64_t draw, uint64_t block, float z[4]) {
  std::array<uint32_t, 4> w = philox4x32_10(
      {uint32_t(block), uint32_t(block >> 32), uint32_t(draw), uint32_t(draw >> 32)},
      {uint32_t(seed), uint32_t(seed >> 32)});
  constexpr double kInv32 = 1.0 / 4294967296.0;
  for (int p = 0; p < 2; p++) {
    double ua = (double(w[2 * p]) + 1.0) * kInv32;  // (0, 1]: log never sees 0
    double ub = double(w[2 * p + 1]) * kInv32;
    double r = std::sqrt(-2.0 * std::log(ua));
    double a = 2.0 * M_PI * ub;
    z[2 * p] = float(r * std::cos(a));
    z[2 * p + 1] = float(r * std::sin(a));
  }
}

void normal_fill(uint64_t seed, uint64_t draw, uint64_t first, float* out, size_t n, bool parallel) {
  if (n == 0) return;
  uint64_t b0 = first / 4, b1 = (first + n + 3) / 4;
  // Blocks are independent, so splitting across threads cannot change the numbers.
  auto fill = [&](int64_t lo, int64_t hi) {
    float z[4];
    for (int64_t bi = lo; bi < hi; bi++) {
      uint64_t b = b0 + uint64_t(bi);
      normals_of_block(seed, draw, b, z);
      for (int e = 0; e < 4; e++) {
        uint64_t j = b * 4 + uint64_t(e);
        if (j >= first && j < first + n) out[j - first] = z[e];
      }
    }
  };
  if (parallel)
    parallel_for(int64_t(b1 - b0), fill, 4096);
  else
    fill(0, int64_t(b1 - b0));
}

Tensor randn(const Shape& shape, uint64_t seed, uint64_t draw, bool parallel) {
  Tensor t = Tensor::empty(shape, DType::F32);
  normal_fill(seed, draw, 0, t.ptr<float>(), size_t(t.numel()), parallel);
  return t;
}

}  // namespace pipeline
}  // namespace td
