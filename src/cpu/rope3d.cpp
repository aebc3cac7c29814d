// 3-D RoPE in place, rotations in float64 as the official rope_apply does (it casts x to complex128).
#include "cpu/rope3d.h"

#include <cmath>
#include <vector>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

void rope3d(Tensor& x, int frames, int height, int width, float theta) {
  detail::expect_host_f32(x, "rope3d", "input");
  detail::expect_contiguous(x, "rope3d", "input");
  TD_CHECK(x.dim() == 3, "rope3d input", x.describe(), " must be [L, heads, head_dim]");
  const int64_t L = x.size(0), H = x.size(1), Dh = x.size(2);
  TD_CHECK(Dh % 2 == 0 && Dh >= 6, "rope3d input", "head_dim ", Dh, " must be even and >= 6");
  TD_CHECK(frames > 0 && height > 0 && width > 0 && int64_t(frames) * height * width == L, "rope3d input",
           x.describe(), " has ", L, " tokens but the grid is ", frames, "x", height, "x", width);
  // Pair split: Wan builds tables of n = d-4(d/6), 2(d/6), 2(d/6) dims, i.e. c-2(c/3), c/3, c/3 pairs (c = d/2).
  const int64_t C = Dh / 2, c_hw = C / 3, c_f = C - 2 * c_hw;
  std::vector<double> inv(C);  // per pair: theta^(-2i/n_axis)
  for (int64_t p = 0; p < C; p++) {
    int64_t i = p, n = 2 * c_f;
    if (p >= c_f) {
      i = (p - c_f) % c_hw;
      n = 2 * c_hw;
    }
    inv[p] = 1.0 / std::pow(double(theta), double(2 * i) / double(n));
  }
  const int64_t hw = int64_t(height) * width;
  float* xp = x.ptr<float>();
  parallel_for(
      L,
      [&](int64_t t0, int64_t t1) {
        std::vector<double> cs(C), sn(C);
        for (int64_t t = t0; t < t1; t++) {
          const int64_t f = t / hw, h = (t % hw) / width, w = t % width;
          for (int64_t p = 0; p < C; p++) {
            const int64_t pos = p < c_f ? f : (p < c_f + c_hw ? h : w);
            const double a = double(pos) * inv[p];
            cs[p] = std::cos(a);
            sn[p] = std::sin(a);
          }
          for (int64_t hd = 0; hd < H; hd++) {
            float* v = xp + (t * H + hd) * Dh;
            for (int64_t p = 0; p < C; p++) {
              const double re = v[2 * p], im = v[2 * p + 1];
              v[2 * p] = float(re * cs[p] - im * sn[p]);
              v[2 * p + 1] = float(re * sn[p] + im * cs[p]);
            }
          }
        }
      },
      16);
}

}  // namespace cpu
}  // namespace td
