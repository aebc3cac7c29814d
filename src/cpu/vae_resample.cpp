#include "cpu/vae_resample.h"

#include <cstring>

#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

void vae_upsample_nearest2x(const Tensor& x, Tensor& y) {
  const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  expect_shape(y, {T, 2 * H, 2 * W, C}, "vae_upsample_nearest2x output");
  const size_t es = dtype_size(x.dtype());
  TD_CHECK(x.dtype() == y.dtype(), "vae_upsample_nearest2x", "dtype mismatch");
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
  const size_t px = size_t(C) * es;
  parallel_for(T * 2 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t t = r / (2 * H), h = (r % (2 * H)) / 2;
      const char* src = xp + ((t * H + h) * W) * px;
      char* dst = yp + r * 2 * W * px;
      for (int64_t w = 0; w < W; w++) {
        std::memcpy(dst + (2 * w) * px, src + w * px, px);
        std::memcpy(dst + (2 * w + 1) * px, src + w * px, px);
      }
    }
  }, 16);
}

void vae_phase_shuffle(const Tensor& x, Tensor& y) {
  const int64_t T = x.size(0), H = x.size(1) - 1, W = x.size(2) - 1, C = x.size(3) / 4;
  expect_shape(y, {T, 2 * H, 2 * W, C}, "vae_phase_shuffle output");
  TD_CHECK(x.dtype() == y.dtype() && x.size(3) == 4 * C, "vae_phase_shuffle", "bad input ", shape_str(x.shape()));
  const size_t es = dtype_size(x.dtype()), px = size_t(C) * es;
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
  parallel_for(T * 2 * H, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t t = r / (2 * H), yy = r % (2 * H), i = yy / 2, a = yy % 2;
      for (int64_t xx = 0; xx < 2 * W; xx++) {
        const int64_t j = xx / 2, b = xx % 2;
        const char* src = xp + (((t * (H + 1) + i + a) * (W + 1) + j + b) * 4 + 2 * a + b) * px;
        std::memcpy(yp + (r * 2 * W + xx) * px, src, px);
      }
    }
  }, 16);
}

void vae_time_interleave(const Tensor& x, Tensor& y) {
  const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C2 = x.size(3), C = C2 / 2;
  expect_shape(y, {2 * T, H, W, C}, "vae_time_interleave output");
  TD_CHECK(x.dtype() == y.dtype(), "vae_time_interleave", "dtype mismatch");
  const size_t es = dtype_size(x.dtype());
  const char* xp = static_cast<const char*>(x.data());
  char* yp = static_cast<char*>(y.data());
  const int64_t HW = H * W;
  parallel_for(T * HW, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
      const int64_t t = i / HW, p = i % HW;
      const char* src = xp + i * C2 * es;
      std::memcpy(yp + ((2 * t) * HW + p) * C * es, src, C * es);
      std::memcpy(yp + ((2 * t + 1) * HW + p) * C * es, src + C * es, C * es);
    }
  }, 256);
}

}  // namespace cpu
}  // namespace td

namespace td {
namespace cpu {
void vae_zero(Tensor& x) { std::memset(x.data(), 0, x.nbytes()); }
}  // namespace cpu
}  // namespace td
