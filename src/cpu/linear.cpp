// fp32 linear through OpenBLAS. The GEMM is called from one thread and OpenBLAS threads itself (we never call it
// from inside a td::parallel_for region, which would oversubscribe); bias and epilogue run on td's pool.
#include "cpu/linear.h"

#include <cblas.h>

#include <cmath>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

using detail::expect_contiguous;
using detail::expect_host_f32;

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep) {
  expect_host_f32(x, "linear", "input");
  expect_host_f32(w, "linear", "weight");
  expect_host_f32(y, "linear", "output");
  TD_CHECK(w.dim() == 2, "linear weight", w.describe(), " must be 2-D [N, K]");
  const int64_t N = w.size(0), K = w.size(1);
  TD_CHECK(x.dim() >= 1 && x.size(-1) == K, "linear input", x.describe(), " does not end in K=", K, " (weight ",
           w.describe(), ")");
  TD_CHECK(y.dim() >= 1 && y.size(-1) == N, "linear output", y.describe(), " does not end in N=", N);
  expect_contiguous(x, "linear", "input");
  expect_contiguous(w, "linear", "weight");
  expect_contiguous(y, "linear", "output");
  const int64_t M = detail::rows_of(x);
  TD_CHECK(detail::rows_of(y) == M, "linear output", y.describe(), " has a different row count than input ",
           x.describe());
  const float* b = nullptr;
  if (bias) {
    expect_host_f32(*bias, "linear", "bias");
    TD_CHECK(bias->numel() == N && bias->is_contiguous(), "linear bias", bias->describe(), " must have ", N,
             " elements");
    b = bias->ptr<float>();
  }
  if (M == 0 || N == 0) return;
  float* yp = y.ptr<float>();
  if (K == 0) {
    for (int64_t i = 0; i < M * N; i++) yp[i] = 0.f;
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, x.ptr<float>(), int(K),
                w.ptr<float>(), int(K), 0.0f, yp, int(N));
  }
  if (!b && ep == Epilogue::None) return;
  parallel_for(
      M,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
          float* row = yp + r * N;
          if (b)
            for (int64_t j = 0; j < N; j++) row[j] += b[j];
          if (ep == Epilogue::GeluTanh) {
            for (int64_t j = 0; j < N; j++) {
              float v = row[j];
              row[j] = 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            }
          }
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)));
}

}  // namespace cpu
}  // namespace td
