// fp32 LayerNorms, one row per iteration. Statistics are accumulated in double: this is the reference backend, and
// the cost is negligible next to the GEMMs.
#include "cpu/layernorm.h"

#include <cmath>

#include "core/threads.h"
#include "cpu/common.h"
#include "cpu/residual.h"

namespace td {
namespace cpu {

using detail::expect_contiguous;
using detail::expect_host_f32;

namespace {

// y = norm(x) * mul[j] + add[j]; mul/add may be null (1 / 0). `one_plus` adds 1 to mul (the adaLN scale).
void layernorm_rows(const Tensor& x, const float* mul, bool one_plus, const float* add, float eps, Tensor& y,
                    const char* op) {
  expect_host_f32(x, op, "input");
  expect_host_f32(y, op, "output");
  expect_contiguous(x, op, "input");
  expect_contiguous(y, op, "output");
  TD_CHECK(x.shape() == y.shape(), cat(op, " output"), y.describe(), " does not match input ", x.describe());
  const int64_t D = x.dim() ? x.size(-1) : 1, M = detail::rows_of(x);
  const float* xp = x.ptr<float>();
  float* yp = y.ptr<float>();
  parallel_for(
      M,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
          const float* xr = xp + r * D;
          float* yr = yp + r * D;
          double s = 0;
          for (int64_t j = 0; j < D; j++) s += xr[j];
          const double mean = s / double(D);
          double v = 0;
          for (int64_t j = 0; j < D; j++) {
            double d = xr[j] - mean;
            v += d * d;
          }
          const float rstd = float(1.0 / std::sqrt(v / double(D) + double(eps)));
          const float mf = float(mean);
          for (int64_t j = 0; j < D; j++) {
            float n = (xr[j] - mf) * rstd;
            if (mul) n *= one_plus ? 1.f + mul[j] : mul[j];
            if (add) n += add[j];
            yr[j] = n;
          }
        }
      },
      std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)));
}

const float* vec(const Tensor* t, int64_t D, const char* op, const char* what) {
  if (!t) return nullptr;
  expect_host_f32(*t, op, what);
  TD_CHECK(t->numel() == D && t->is_contiguous(), cat(op, " ", what), t->describe(), " must have ", D,
           " contiguous elements");
  return t->ptr<float>();
}

}  // namespace

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) {
  const int64_t D = x.dim() ? x.size(-1) : 1;
  const float* sc = vec(&scale, D, "layernorm_modulate", "scale");
  const float* sh = vec(&shift, D, "layernorm_modulate", "shift");
  layernorm_rows(x, sc, true, sh, eps, y, "layernorm_modulate");
}

void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) {
  const int64_t D = x.dim() ? x.size(-1) : 1;
  const float* w = vec(weight, D, "layernorm", "weight");
  const float* b = vec(bias, D, "layernorm", "bias");
  layernorm_rows(x, w, false, b, eps, y, "layernorm");
}

void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h) {
  if (gate) gated_residual(x, y, *gate);
  else add_residual(x, y);
  if (modulate) {
    TD_CHECK(mul && add, "residual_layernorm", "modulation needs both scale and shift");
    layernorm_modulate(x, *add, *mul, eps, h);
  } else {
    layernorm(x, mul, add, eps, h);
  }
}

}  // namespace cpu
}  // namespace td
