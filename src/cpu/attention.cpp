// Dense attention, fp32. Per head and per block of queries: S = q k^T * scale (OpenBLAS), a full-row softmax on td's
// pool, then o = P v (OpenBLAS). The score block is capped at ~32 MB so memory stays bounded at any sequence length;
// a full row per query keeps the softmax exact (no online rescaling error) for this reference backend.
#include "cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts) {
  TD_CHECK(opts.mode == AttentionMode::Dense, "--attention", "the CPU dense kernel got mode ",
           attention_mode_name(opts.mode));
  for (auto* t : {&q, &k, &v}) {
    detail::expect_host_f32(*t, "attention", "input");
    detail::expect_contiguous(*t, "attention", "input");
    TD_CHECK(t->dim() == 3, "attention input", t->describe(), " must be [L, heads, head_dim]");
  }
  detail::expect_host_f32(o, "attention", "output");
  detail::expect_contiguous(o, "attention", "output");
  const int64_t Lq = q.size(0), H = q.size(1), Dh = q.size(2), Lk = k.size(0);
  TD_CHECK(k.size(1) == H && k.size(2) == Dh, "attention key", k.describe(), " does not match query ", q.describe());
  TD_CHECK(v.shape() == k.shape(), "attention value", v.describe(), " does not match key ", k.describe());
  TD_CHECK(o.shape() == q.shape(), "attention output", o.describe(), " does not match query ", q.describe());
  TD_CHECK(Lk > 0, "attention key", "no keys");
  const float scale = opts.scale > 0.f ? opts.scale : float(1.0 / std::sqrt(double(Dh)));
  const int64_t ld = H * Dh;
  const int64_t bq = std::min<int64_t>(Lq, std::max<int64_t>(16, (int64_t(1) << 23) / Lk));
  // Reused across calls (grows to the largest block seen, at most ~32 MB per calling thread).
  // (The pool's workers see their own thread_local, so the lambdas below use the pointer, never the vector.)
  static thread_local std::vector<float> S_buf;
  if (S_buf.size() < size_t(bq * Lk)) S_buf.resize(size_t(bq * Lk));
  float* const S = S_buf.data();
  for (int64_t h = 0; h < H; h++) {
    const float* qh = q.ptr<float>() + h * Dh;
    const float* kh = k.ptr<float>() + h * Dh;
    const float* vh = v.ptr<float>() + h * Dh;
    float* oh = o.ptr<float>() + h * Dh;
    for (int64_t q0 = 0; q0 < Lq; q0 += bq) {
      const int64_t nq = std::min(bq, Lq - q0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(Lk), int(Dh), scale, qh + q0 * ld, int(ld),
                  kh, int(ld), 0.f, S, int(Lk));
      parallel_for(
          nq,
          [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
              float* row = S + r * Lk;
              float m = row[0];
              for (int64_t j = 1; j < Lk; j++) m = std::max(m, row[j]);
              double sum = 0;
              for (int64_t j = 0; j < Lk; j++) {
                row[j] = std::exp(row[j] - m);
                sum += row[j];
              }
              const float inv = float(1.0 / sum);
              for (int64_t j = 0; j < Lk; j++) row[j] *= inv;
            }
          },
          std::max<int64_t>(1, 4096 / Lk));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(Dh), int(Lk), 1.f, S, int(Lk), vh,
                  int(ld), 0.f, oh + q0 * ld, int(ld));
    }
  }
}

}  // namespace cpu
}  // namespace td
