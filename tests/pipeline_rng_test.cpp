// The noise generator: Philox known-answer vectors, determinism, independence of draws, normal statistics.
#include <pthread.h>
#include <sched.h>

#include <cmath>

#include "core/threads.h"
#include "pipeline/generate.h"
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

// The sampler's starting state, made on its own threads before the diffusion stage, is exactly the draw-0 noise of
// each sample times t0 (rCM) or 1 (flow samplers), whatever the split; the asynchronous form gives the same.
TEST(PipelineRng, InitialLatentsAreDrawZeroTimesT0) {
  GenerateOptions o;
  o.seed = 7;
  o.num_samples = 2;
  o.steps = 4;
  LatentShape shape;
  shape.frames = 5, shape.height = 64, shape.width = 64;  // 327,680 values: five threads
  std::vector<double> times, net_t;
  sampler_schedule(o, &times, &net_t);
  ASSERT_EQ(o.sampler, SamplerKind::RCM);
  int policy_before = 0, policy_after = 0;
  sched_param sp{};
  pthread_getschedparam(pthread_self(), &policy_before, &sp);
  const InitialLatents xs = initial_latents(o, shape);
  pthread_getschedparam(pthread_self(), &policy_after, &sp);
  EXPECT_EQ(policy_after, policy_before) << "the synchronous form must leave the caller's thread priority alone";
  InitialLatents ys = initial_latents_async(o, shape).get();
  ASSERT_EQ(xs.size(), 2u);
  for (int b = 0; b < 2; b++) {
    Tensor eps = randn({16, 5, 64, 64}, o.seed, noise_draw(b, 0));
    ASSERT_EQ(xs[size_t(b)].size(), size_t(eps.numel()));
    for (int64_t i = 0; i < eps.numel(); i++) {
      ASSERT_EQ(xs[size_t(b)][size_t(i)], double(eps.ptr<float>()[i]) * times[0]) << "sample " << b << " at " << i;
      ASSERT_EQ(ys[size_t(b)][size_t(i)], xs[size_t(b)][size_t(i)]);
    }
  }
  o.sampler = SamplerKind::Euler;
  o.steps = 8;
  const InitialLatents e = initial_latents(o, shape);
  Tensor eps = randn({16, 5, 64, 64}, o.seed, noise_draw(0, 0));
  for (int64_t i = 0; i < eps.numel(); i += 997) ASSERT_EQ(e[0][size_t(i)], double(eps.ptr<float>()[i]));
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
