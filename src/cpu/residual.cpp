// Residual-stream updates in fp32.
#include "cpu/residual.h"

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

namespace {

void residual(Tensor& x, const Tensor& y, const Tensor* gate, const char* op) {
  detail::expect_host_f32(x, op, "residual stream");
  detail::expect_host_f32(y, op, "update");
  detail::expect_contiguous(x, op, "residual stream");
  detail::expect_contiguous(y, op, "update");
  TD_CHECK(x.numel() == y.numel() && (x.dim() ? x.size(-1) : 1) == (y.dim() ? y.size(-1) : 1), cat(op, " update"),
           y.describe(), " does not match the residual stream ", x.describe());
  const int64_t D = x.dim() ? x.size(-1) : 1, M = detail::rows_of(x);
  const float* g = nullptr;
  if (gate) {
    detail::expect_host_f32(*gate, op, "gate");
    TD_CHECK(gate->numel() == D && gate->is_contiguous(), cat(op, " gate"), gate->describe(), " must have ", D,
             " elements");
    g = gate->ptr<float>();
  }
  float* xp = x.ptr<float>();
  const float* yp = y.ptr<float>();
  parallel_for(
      M,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
          float* xr = xp + r * D;
          const float* yr = yp + r * D;
          if (g)
            for (int64_t j = 0; j < D; j++) xr[j] += yr[j] * g[j];
          else
            for (int64_t j = 0; j < D; j++) xr[j] += yr[j];
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)));
}

}  // namespace

void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate) { residual(x, y, &gate, "gated_residual"); }
void add_residual(Tensor& x, const Tensor& y) { residual(x, y, nullptr, "add_residual"); }

}  // namespace cpu
}  // namespace td
