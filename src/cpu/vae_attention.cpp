#include "cpu/vae_attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

void vae_attention(const Tensor& qkv, Tensor& o) {
  TD_CHECK(qkv.dim() == 2 && qkv.size(1) % 3 == 0, "vae_attention", "qkv must be [L, 3C], got ",
           shape_str(qkv.shape()));
  const int64_t L = qkv.size(0), C = qkv.size(1) / 3;
  expect_shape(o, {L, C}, "vae_attention output");
  const float* q = qkv.ptr<float>();
  const float* k = q + C;
  const float* v = q + 2 * C;
  const int ld = int(3 * C);
  const float scale = 1.f / std::sqrt(float(C));
  const int64_t bq = std::max<int64_t>(1, std::min<int64_t>(L, (int64_t(16) << 20) / std::max<int64_t>(1, L)));
  std::vector<float> s(size_t(bq * L));
  for (int64_t q0 = 0; q0 < L; q0 += bq) {
    const int64_t n = std::min(bq, L - q0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(L), int(C), scale, q + q0 * ld, ld, k, ld, 0.f,
                s.data(), int(L));
    parallel_for(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        float* r = s.data() + i * L;
        float m = r[0];
        for (int64_t j = 1; j < L; j++) m = std::max(m, r[j]);
        double sum = 0;
        for (int64_t j = 0; j < L; j++) sum += (r[j] = std::exp(r[j] - m));
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < L; j++) r[j] *= inv;
      }
    }, 8);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(C), int(L), 1.f, s.data(), int(L), v, ld, 0.f,
                o.ptr<float>() + q0 * C, int(C));
  }
}

}  // namespace cpu
}  // namespace td
