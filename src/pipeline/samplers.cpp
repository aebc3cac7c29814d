#include "pipeline/samplers.h"

#include <cmath>

#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace pipeline {

const char* sampler_name(SamplerKind k) {
  switch (k) {
    case SamplerKind::RCM: return "rcm";
    case SamplerKind::UniPC: return "unipc";
    case SamplerKind::Euler: return "euler";
  }
  return "?";
}

SamplerKind parse_sampler(const std::string& s) {
  if (s == "rcm") return SamplerKind::RCM;
  if (s == "unipc") return SamplerKind::UniPC;
  if (s == "euler") return SamplerKind::Euler;
  fail("--sampler", cat("unknown sampler '", s, "' (expected rcm, unipc or euler)"));
}

std::vector<double> rcm_times(int steps, double sigma_max) {
  TD_CHECK(steps >= 1 && steps <= 4, "--steps", "the rCM sampler takes 1 to 4 steps, got ", steps);
  TD_CHECK(sigma_max > 0 && std::isfinite(sigma_max), "--sigma-max", "must be a positive number, got ", sigma_max);
  // The intermediate angles are the ones the TurboDiffusion/rCM scripts ship ("for better visual quality").
  static const double kMid[3] = {1.5, 1.4, 1.0};
  std::vector<double> angles{std::atan(sigma_max)};
  for (int i = 0; i < steps - 1; i++) angles.push_back(kMid[i]);
  angles.push_back(0.0);
  std::vector<double> t;
  for (double a : angles) t.push_back(std::sin(a) / (std::sin(a) + std::cos(a)));
  return t;
}

// The sampler updates are elementwise over the whole latent (2M values at 480p): split over the CPU pool, which
// changes nothing in the results and takes a few ms off every step.
constexpr int64_t kUpdateGrain = int64_t(1) << 16;

void rcm_step(double* x, const float* v, const float* noise, size_t n, double t_cur, double t_next, bool ode) {
  if (ode) {
    const double dt = t_cur - t_next;
    parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) x[i] -= dt * double(v[i]);
    }, kUpdateGrain);
    return;
  }
  if (t_next == 0.0) {  // the last step returns the x0-prediction
    parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) x[i] -= t_cur * double(v[i]);
    }, kUpdateGrain);
    return;
  }
  TD_ASSERT(noise != nullptr);
  parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const double x0 = x[i] - t_cur * double(v[i]);
      x[i] = (1.0 - t_next) * x0 + t_next * double(noise[i]);
    }
  }, kUpdateGrain);
}

FlowSchedule flow_schedule(int steps, double shift) {
  TD_CHECK(steps >= 1 && steps <= 1000, "--steps", "the teacher samplers take 1 to 1000 steps, got ", steps);
  TD_CHECK(shift > 0 && std::isfinite(shift), "--shift", "must be a positive number, got ", shift);
  // Wan builds sigma_max from a float32 tensor (1 - 1/1000 in f32 = 0.99900001).
  const double sigma_max = double(float(1.0 - 1.0 / 1000.0));
  FlowSchedule s;
  for (int i = 0; i < steps; i++) {
    double sg = sigma_max + (0.0 - sigma_max) * double(i) / double(steps);  // numpy linspace
    sg = shift * sg / (1.0 + (shift - 1.0) * sg);
    s.timesteps.push_back(std::floor(sg * 1000.0));
    s.sigmas.push_back(double(float(sg)));
  }
  s.sigmas.push_back(0.0);
  return s;
}

void euler_step(double* x, const float* v, size_t n, double s_cur, double s_next) {
  const double ds = s_next - s_cur;
  parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) x[i] += ds * double(v[i]);
  }, kUpdateGrain);
}

UniPC::UniPC(std::vector<double> sigmas, size_t n) : sigmas_(std::move(sigmas)), n_(n) {
  TD_ASSERT(sigmas_.size() >= 2 && sigmas_.back() == 0.0);
  m_prev_.assign(n, 0.0);
  m_prev2_.assign(n, 0.0);
  last_sample_.assign(n, 0.0);
  m_cur_.assign(n, 0.0);
}

double UniPC::lambda(int i) const {
  double s = sigmas_[size_t(i)];
  return std::log(1.0 - s) - std::log(s);
}

void UniPC::step(int i, double* x, const float* v) {
  TD_ASSERT(i == next_step_, "UniPC steps must run in order");
  const int N = num_steps();
  // x0-prediction from the uncorrected sample (as the reference implementation does).
  for (size_t j = 0; j < n_; j++) m_cur_[j] = x[j] - sigmas_[size_t(i)] * double(v[j]);

  if (i > 0) {
    // Corrector UniC: refines x_i with the new model output, using the order of the previous predictor.
    const double s_t = sigmas_[size_t(i)], s_0 = sigmas_[size_t(i - 1)];
    const double alpha_t = 1.0 - s_t;
    const double h = lambda(i) - lambda(i - 1), hh = -h;
    const double phi1 = std::expm1(hh), B = std::expm1(hh);
    double rho_d1 = 0.0, rho_t = 0.5;
    double r = 1.0;
    if (last_order_ == 2) {
      r = (lambda(i - 2) - lambda(i - 1)) / h;
      const double k1 = phi1 / hh - 1.0, k2 = k1 / hh - 0.5;
      const double b0 = k1 / B, b1 = 2.0 * k2 / B;
      // [[1, 1], [r, 1]] rho = [b0, b1]
      const double det = 1.0 - r;
      rho_d1 = (b0 - b1) / det;
      rho_t = (b1 - r * b0) / det;
    }
    for (size_t j = 0; j < n_; j++) {
      double m0 = m_prev_[j];
      double xt = (s_t / s_0) * last_sample_[j] - alpha_t * phi1 * m0;
      double corr = rho_t * (m_cur_[j] - m0);
      if (last_order_ == 2) corr += rho_d1 * (m_prev2_[j] - m0) / r;
      x[j] = xt - alpha_t * B * corr;
    }
  }

  // Order: 1 on the first step and on the last (lower_order_final), else 2.
  const int order = std::min(std::min(2, N - i), i + 1);
  for (size_t j = 0; j < n_; j++) last_sample_[j] = x[j];

  const double s_t = sigmas_[size_t(i + 1)], s_0 = sigmas_[size_t(i)];
  if (s_t == 0.0) {
    // lambda -> inf, expm1(-inf) = -1: the update reduces exactly to the x0-prediction.
    for (size_t j = 0; j < n_; j++) x[j] = m_cur_[j];
  } else {
    const double alpha_t = 1.0 - s_t;
    const double h = lambda(i + 1) - lambda(i);
    const double phi1 = std::expm1(-h), B = phi1;
    double r = 1.0;
    if (order == 2) r = (lambda(i - 1) - lambda(i)) / h;
    for (size_t j = 0; j < n_; j++) {
      double xt = (s_t / s_0) * x[j] - alpha_t * phi1 * m_cur_[j];
      if (order == 2) xt -= alpha_t * B * 0.5 * (m_prev_[j] - m_cur_[j]) / r;
      x[j] = xt;
    }
  }
  m_prev2_.swap(m_prev_);
  m_prev_.swap(m_cur_);  // m_prev_ = this step's x0-prediction
  last_order_ = order;
  next_step_++;
}

void cfg_combine(float* v_cond, const float* v_uncond, size_t n, double g) {
  for (size_t i = 0; i < n; i++) v_cond[i] = float(double(v_uncond[i]) + g * (double(v_cond[i]) - double(v_uncond[i])));
}

const char* const kWanDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，"
    "多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

}  // namespace pipeline
}  // namespace td
