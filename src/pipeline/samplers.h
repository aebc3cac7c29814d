// Samplers as pure functions on host arrays. The latent state is kept in f64 on the host (as rCM's scripts keep a
// float64 state); the network output v arrives as f32. A latent is at most 16x21x90x160 = 4.8M values, so a host
// round trip per step costs a few ms against a DiT forward of 80+ ms (and keeps the samplers device-independent).
//
// Conventions (wan_spec.md §5.3, §6.3): rectified-flow time t (= sigma) in [0, 1], x_t = (1 - t) x0 + t eps, the
// network predicts the velocity v = eps - x0, so x0 = x_t - t v.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace td {
namespace pipeline {

enum class SamplerKind { RCM, UniPC, Euler };
const char* sampler_name(SamplerKind k);
SamplerKind parse_sampler(const std::string& s);  // "rcm" | "unipc" | "euler"; td::Error names --sampler

// ---- rCM (few-step consistency sampler) ----

// TrigFlow angles [atan(sigma_max), 1.5, 1.4, 1.0][:steps] + [0] mapped to RF time sin/(sin + cos). Size steps + 1,
// last entry 0. steps in 1..4 (td::Error naming --steps otherwise), sigma_max > 0.
std::vector<double> rcm_times(int steps, double sigma_max);

// One rCM step on n values. Stochastic (default): x <- (1 - t_next)(x - t_cur v) + t_next noise. ODE (--ode):
// x <- x - (t_cur - t_next) v. noise may be null when t_next == 0 or ode is set.
void rcm_step(double* x, const float* v, const float* noise, size_t n, double t_cur, double t_next, bool ode);

// ---- teacher: flow-matching schedule shared by UniPC and Euler (Wan's FlowUniPCMultistepScheduler) ----

struct FlowSchedule {
  std::vector<double> sigmas;     // steps + 1 values, f32-rounded like Wan's, last = 0
  std::vector<double> timesteps;  // steps values fed to the network: int(sigma * 1000) (truncation, as Wan)
};
// sigma = linspace(0.999, 0, steps + 1)[:-1]; sigma <- shift sigma / (1 + (shift - 1) sigma); append 0.
FlowSchedule flow_schedule(int steps, double shift);

// Euler on the flow ODE: x <- x + (s_next - s_cur) v.
void euler_step(double* x, const float* v, size_t n, double s_cur, double s_next);

// Multistep UniPC, order 2, B(h) = expm1(-h) ("bh2"), x0-prediction, first and last steps first order, corrector on
// (wan_spec.md §5.4). Holds the previous x0-predictions and the last corrected sample, so one instance per sample.
class UniPC {
 public:
  UniPC(std::vector<double> sigmas, size_t n);  // sigmas: FlowSchedule::sigmas (N + 1 values, last 0)
  int num_steps() const { return int(sigmas_.size()) - 1; }
  // Step i (0-based; must be called in order 0..N-1): x holds x_i on entry and x_{i+1} on return.
  void step(int i, double* x, const float* v);

 private:
  double lambda(int i) const;  // ln(alpha_i) - ln(sigma_i), alpha = 1 - sigma
  std::vector<double> sigmas_;
  size_t n_;
  std::vector<double> m_prev_, m_prev2_;  // x0-predictions of steps i-1 and i-2
  std::vector<double> last_sample_;       // the (corrected) x of step i-1
  std::vector<double> m_cur_;
  int last_order_ = 0;
  int next_step_ = 0;
};

// Classifier-free guidance: v = v_uncond + g (v_cond - v_uncond), in place on v_cond.
void cfg_combine(float* v_cond, const float* v_uncond, size_t n, double guidance);

// Wan's default negative prompt (used when --neg-prompt is not given with a teacher sampler).
extern const char* const kWanDefaultNegativePrompt;

}  // namespace pipeline
}  // namespace td
