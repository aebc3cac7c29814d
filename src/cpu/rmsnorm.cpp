// fp32 RMSNorm over the whole last dim (Wan's norm_q/norm_k span all heads), statistics in double.
#include "cpu/rmsnorm.h"

#include <cmath>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

void rmsnorm(Tensor& x, const Tensor& weight, float eps) {
  detail::expect_host_f32(x, "rmsnorm", "input");
  detail::expect_host_f32(weight, "rmsnorm", "weight");
  detail::expect_contiguous(x, "rmsnorm", "input");
  const int64_t D = x.dim() ? x.size(-1) : 1, M = detail::rows_of(x);
  TD_CHECK(weight.numel() == D && weight.is_contiguous(), "rmsnorm weight", weight.describe(), " must have ", D,
           " elements");
  float* xp = x.ptr<float>();
  const float* w = weight.ptr<float>();
  parallel_for(
      M,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
          float* xr = xp + r * D;
          double s = 0;
          for (int64_t j = 0; j < D; j++) s += double(xr[j]) * xr[j];
          const float rs = float(1.0 / std::sqrt(s / double(D) + double(eps)));
          for (int64_t j = 0; j < D; j++) xr[j] = xr[j] * rs * w[j];
        }
      },
      std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)));
}

}  // namespace cpu
}  // namespace td
