// The noise generator: Philox known-answer vectors, determinism, independence of draws, normal statistics.
#include <cmath>

#include "core/threads.h"
#include "pipeline/rng.h"
#include "test_util.h"

namespace td {
namespace pipeline {
namespace {

TEST(PipelineRng, PhiloxKnownAnswers) {
  // Random123's kat_vectors for philox4x32_10.
  auto a = philox4x32_10({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(a[0], 0x6627e8d5u);
  EXPECT_EQ(a[1], 0xe169c58du);
  EXPECT_EQ(a[2], 0xbc57ac4cu);
  EXPECT_EQ(a[3], 0x9b00dbd8u);
  auto b = philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(b[0], 0x408f276du);
  EXPECT_EQ(b[3], 0x6d5451fdu);
  auto c = philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(c[0], 0xd16cfe09u);
  EXPECT_EQ(c[1], 0x94fdccebu);
  EXPECT_EQ(c[2], 0x5001e420u);
  EXPECT_EQ(c[3], 0x24126ea1u);
}

TEST(PipelineRng, SameSeedSameNoiseAnyThreadCountAnyOffset) {
  Tensor a = randn({3, 5, 7, 11}, 42, 0);
  int saved = num_threads();
  set_num_threads(1);
  Tensor b = randn({3, 5, 7, 11}, 42, 0);
  set_num_threads(saved);
  EXPECT_EQ(test::max_abs_diff(a, b), 0.0);
  // A window of the draw equals the same elements of the whole draw (counter-based: no hidden state).
  std::vector<float> part(13);
  normal_fill(42, 0, 101, part.data(), part.size());
  for (size_t i = 0; i < part.size(); i++) EXPECT_EQ(part[i], a.ptr<float>()[101 + i]);
  Tensor c = randn({3, 5, 7, 11}, 43, 0), d = randn({3, 5, 7, 11}, 42, 1);
  EXPECT_GT(test::max_abs_diff(a, c), 0.5);
  EXPECT_GT(test::max_abs_diff(a, d), 0.5);
}

TEST(PipelineRng, GoldenValues) {
  // First Box-Muller pair from philox({0,0,0,0}, {0,0}) worked by hand from the words above:
  // ua = (0x6627e8d5 + 1) / 2^32, ub = 0xe169c58d / 2^32.
  double ua = (double(0x6627e8d5u) + 1.0) / 4294967296.0, ub = double(0xe169c58du) / 4294967296.0;
  double r = std::sqrt(-2.0 * std::log(ua));
  float z[4];
  normal_fill(0, 0, 0, z, 4);
  EXPECT_EQ(z[0], float(r * std::cos(2.0 * M_PI * ub)));
  EXPECT_EQ(z[1], float(r * std::sin(2.0 * M_PI * ub)));
}

TEST(PipelineRng, NormalStatistics) {
  Tensor t = randn({1 << 18}, 7, 3);
  double s = 0, s2 = 0, s4 = 0;
  const float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); i++) {
    s += p[i];
    s2 += double(p[i]) * p[i];
    s4 += double(p[i]) * p[i] * p[i] * p[i];
  }
  double n = double(t.numel()), mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(var, 1.0, 0.01);
  EXPECT_NEAR(s4 / n, 3.0, 0.05);  // Gaussian kurtosis
}

TEST(PipelineRng, DrawNumbering) {
  EXPECT_EQ(noise_draw(0, 0), 0u);
  EXPECT_EQ(noise_draw(0, 4), 4u);
  EXPECT_EQ(noise_draw(2, 1), 2049u);
}

}  // namespace
}  // namespace pipeline
}  // namespace td
