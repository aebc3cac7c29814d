#include "cpu/vae_rms_norm.h"

#include <cmath>

#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y) {
  TD_CHECK(x.dtype() == DType::F32 && y.dtype() == DType::F32, "vae_rms_norm", "CPU path is f32 only");
  const int64_t C = x.size(-1), P = x.numel() / C;
  TD_CHECK(gamma.numel() == C, "vae_rms_norm gamma", "has ", gamma.numel(), " values for ", C, " channels");
  TD_CHECK(y.numel() == x.numel(), "vae_rms_norm", "output size mismatch");
  const float* xp = x.ptr<float>();
  const float* g = gamma.ptr<float>();
  const float* b = pre_bias ? pre_bias->ptr<float>() : nullptr;
  if (pre_bias) TD_CHECK(pre_bias->numel() == C, "vae_rms_norm bias", "has ", pre_bias->numel(), " values for ", C);
  float* yp = y.ptr<float>();
  const float scale = std::sqrt(float(C));
  parallel_for(P, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const float* r = xp + i * C;
      float* o = yp + i * C;
      double ss = 0;
      for (int64_t c = 0; c < C; c++) {
        const double u = double(r[c]) + (b ? b[c] : 0.f);
        ss += u * u;
      }
      const float inv = scale / std::max(float(std::sqrt(ss)), 1e-12f);
      for (int64_t c = 0; c < C; c++) {
        float v = (r[c] + (b ? b[c] : 0.f)) * inv * g[c];
        o[c] = silu ? v / (1.f + std::exp(-v)) : v;
      }
    }
  }, 64);
}

}  // namespace cpu
}  // namespace td
