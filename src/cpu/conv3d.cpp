#include "cpu/conv3d.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"

namespace td {

Shape Conv3dParams::out_shape(const Shape& x, const Shape& w, const char* what) const {
  TD_CHECK(x.size() == 4 && w.size() == 5, what, "conv3d expects x [T,H,W,C] and w [O,kt,kh,kw,C], got ",
           shape_str(x), " and ", shape_str(w));
  TD_CHECK(x[3] == w[4], what, "conv3d input has ", x[3], " channels, the weight expects ", w[4]);
  int64_t to = (x[0] - w[1]) / stride_t + 1;
  int64_t ho = (x[1] + pad_top + pad_bottom - w[2]) / stride_h + 1;
  int64_t wo = (x[2] + pad_left + pad_right - w[3]) / stride_w + 1;
  TD_CHECK(x[0] >= w[1] && to > 0 && ho > 0 && wo > 0, what, "conv3d input ", shape_str(x), " too small for kernel ",
           shape_str(w));
  return {to, ho, wo, w[0]};
}

namespace cpu {

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate) {
  TD_CHECK(x.dtype() == DType::F32 && w.dtype() == DType::F32 && y.dtype() == DType::F32, "conv3d",
           "CPU conv3d is f32 only");
  TD_CHECK(x.is_contiguous() && w.is_contiguous() && y.is_contiguous(), "conv3d", "tensors must be contiguous");
  Shape os = p.out_shape(x.shape(), w.shape(), "conv3d");
  expect_shape(y, os, "conv3d output");
  const int64_t Hi = x.size(1), Wi = x.size(2), C = x.size(3);
  const int64_t O = w.size(0), kt = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t To = os[0], Ho = os[1], Wo = os[2];
  const int64_t K = kt * kh * kw * C;
  const float* xp = x.ptr<float>();
  const float* wp = w.ptr<float>();
  float* yp = y.ptr<float>();
  const int64_t P = To * Ho * Wo;

  // Initialise y with the bias (or keep it, for accumulate) so every GEMM below runs with beta = 1.
  const float* bp = bias ? bias->ptr<float>() : nullptr;
  if (bias) TD_CHECK(bias->numel() == O, "conv3d bias", "has ", bias->numel(), " values, expected ", O);
  parallel_for(P, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      float* r = yp + i * O;
      if (!accumulate) {
        if (bp) std::memcpy(r, bp, O * sizeof(float));
        else std::memset(r, 0, O * sizeof(float));
      } else if (bp) {
        for (int64_t o = 0; o < O; o++) r[o] += bp[o];
      }
    }
  }, 256);

  const bool pointwise = kt == 1 && kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
                         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0 && p.stride_t == 1;
  if (pointwise) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(P), int(O), int(C), 1.f, xp, int(C), wp, int(C), 1.f, yp,
                int(O));
    return;
  }
  // im2col a band of output rows at a time (bounded scratch, ~32 MiB), then one GEMM per band.
  const int64_t row_elems = Wo * K;
  const int64_t band = std::max<int64_t>(1, std::min<int64_t>(Ho, (int64_t(8) << 20) / std::max<int64_t>(1, row_elems)));
  std::vector<float> col(size_t(band * row_elems));
  for (int64_t t = 0; t < To; t++) {
    for (int64_t h0 = 0; h0 < Ho; h0 += band) {
      const int64_t nb = std::min(band, Ho - h0);
      parallel_for(nb * Wo, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) {
          const int64_t ho = h0 + i / Wo, wo = i % Wo;
          float* dst = col.data() + i * K;
          for (int64_t dt = 0; dt < kt; dt++) {
            const int64_t ti = t * p.stride_t + dt;
            for (int64_t dh = 0; dh < kh; dh++) {
              const int64_t hi = ho * p.stride_h - p.pad_top + dh;
              for (int64_t dw = 0; dw < kw; dw++, dst += C) {
                const int64_t wi = wo * p.stride_w - p.pad_left + dw;
                if (hi < 0 || hi >= Hi || wi < 0 || wi >= Wi) {
                  std::memset(dst, 0, C * sizeof(float));
                } else {
                  std::memcpy(dst, xp + ((ti * Hi + hi) * Wi + wi) * C, C * sizeof(float));
                }
              }
            }
          }
        }
      }, 16);
      float* yb = yp + ((t * Ho + h0) * Wo) * O;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nb * Wo), int(O), int(K), 1.f, col.data(), int(K), wp,
                  int(K), 1.f, yb, int(O));
    }
  }
}

}  // namespace cpu
}  // namespace td
