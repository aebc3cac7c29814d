// Host dtype conversion through f32 in chunks (no full-size temporary).
#include "cpu/cast.h"

#include <vector>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

void cast(const Tensor& src, Tensor& dst) {
  TD_CHECK(!src.is_cuda() && !dst.is_cuda(), "cast", "the CPU cast needs host tensors (", src.describe(), " -> ",
           dst.describe(), ")");
  TD_CHECK(src.shape() == dst.shape(), "cast output", dst.describe(), " does not match source ", src.describe());
  TD_CHECK(dtype_is_float(dst.dtype()), "cast output", dst.describe(), ": destination must be a float dtype");
  detail::expect_contiguous(dst, "cast", "output");
  Tensor s = src.contiguous();
  if (s.dtype() == dst.dtype()) {
    dst.copy_from(s);
    return;
  }
  const size_t ss = dtype_size(s.dtype()), ds = dtype_size(dst.dtype());
  const char* sp = static_cast<const char*>(s.data());
  char* dp = static_cast<char*>(dst.data());
  const int64_t n = s.numel();
  const int64_t chunk = 4096;
  parallel_for(
      (n + chunk - 1) / chunk,
      [&](int64_t c0, int64_t c1) {
        std::vector<float> tmp(chunk);
        for (int64_t c = c0; c < c1; c++) {
          const int64_t b = c * chunk, e = std::min(n, b + chunk);
          convert_to_f32(sp + b * ss, s.dtype(), tmp.data(), size_t(e - b));
          convert_from_f32(tmp.data(), dp + b * ds, dst.dtype(), size_t(e - b));
        }
      },
      4);
}

}  // namespace cpu
}  // namespace td
