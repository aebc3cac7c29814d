// Each CPU op against a naive double-precision loop on random data.
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "ops/ops.h"
#include "test_util.h"

namespace td {
namespace {

using test::nmse;
using test::randn;

// Shapes deliberately not multiples of anything nice, so edge handling is exercised.
TEST(CpuOps, LinearBiasAndGelu) {
  const int64_t M = 37, K = 29, N = 23;
  Tensor x = randn({M, K}, 1), w = randn({N, K}, 2), b = randn({N}, 3);
  for (Epilogue ep : {Epilogue::None, Epilogue::GeluTanh}) {
    for (bool with_bias : {false, true}) {
      Tensor y = Tensor::empty({M, N}, DType::F32), ref = Tensor::empty({M, N}, DType::F32);
      ops::linear(x, w, with_bias ? &b : nullptr, y, ep);
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double s = with_bias ? b.ptr<float>()[j] : 0.0;
          for (int64_t k = 0; k < K; k++) s += double(x.ptr<float>()[i * K + k]) * w.ptr<float>()[j * K + k];
          if (ep == Epilogue::GeluTanh) s = 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
          ref.ptr<float>()[i * N + j] = float(s);
        }
      EXPECT_LT(nmse(y, ref), 1e-12) << "bias " << with_bias << " gelu " << (ep == Epilogue::GeluTanh);
    }
  }
}

TEST(CpuOps, LinearLeadingDimsAndErrors) {
  Tensor x = randn({3, 5, 16}, 4), w = randn({8, 16}, 5);
  Tensor y = Tensor::empty({3, 5, 8}, DType::F32);
  ops::linear(x, w, nullptr, y);
  Tensor y2 = Tensor::empty({15, 8}, DType::F32);
  ops::linear(x.view({15, 16}), w, nullptr, y2);
  EXPECT_EQ(test::max_abs_diff(y.view({15, 8}), y2), 0.0);
  Tensor bad = Tensor::empty({15, 7}, DType::F32);
  EXPECT_THROW(ops::linear(x, w, nullptr, bad), Error);
  Tensor wbad = randn({8, 15}, 6);
  EXPECT_THROW(ops::linear(x, wbad, nullptr, y), Error);
  Tensor xb = x.to(DType::BF16);
  EXPECT_THROW(ops::linear(xb, w, nullptr, y), Error);
}

void ref_layernorm(const Tensor& x, const float* mul, bool one_plus, const float* add, double eps, Tensor& y) {
  const int64_t D = x.size(-1), M = x.numel() / D;
  for (int64_t r = 0; r < M; r++) {
    const float* xr = x.ptr<float>() + r * D;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < D; j++) mean += xr[j];
    mean /= D;
    for (int64_t j = 0; j < D; j++) var += (xr[j] - mean) * (xr[j] - mean);
    var /= D;
    for (int64_t j = 0; j < D; j++) {
      double n = (xr[j] - mean) / std::sqrt(var + eps);
      if (mul) n *= one_plus ? 1.0 + mul[j] : mul[j];
      if (add) n += add[j];
      y.ptr<float>()[r * D + j] = float(n);
    }
  }
}

TEST(CpuOps, LayerNormModulate) {
  const int64_t M = 19, D = 70;
  Tensor x = randn({M, D}, 7, 2.0f, 0.5f), shift = randn({D}, 8), scale = randn({D}, 9, 0.3f);
  Tensor y = Tensor::empty({M, D}, DType::F32), ref = Tensor::empty({M, D}, DType::F32);
  ops::layernorm_modulate(x, shift, scale, 1e-6f, y);
  ref_layernorm(x, scale.ptr<float>(), true, shift.ptr<float>(), 1e-6, ref);
  EXPECT_LT(nmse(y, ref), 1e-12);
}

TEST(CpuOps, LayerNormAffineAndPlain) {
  const int64_t M = 11, D = 33;
  Tensor x = randn({M, D}, 10, 3.0f, -1.0f), w = randn({D}, 11), b = randn({D}, 12);
  Tensor y = Tensor::empty({M, D}, DType::F32), ref = Tensor::empty({M, D}, DType::F32);
  ops::layernorm(x, &w, &b, 1e-6f, y);
  ref_layernorm(x, w.ptr<float>(), false, b.ptr<float>(), 1e-6, ref);
  EXPECT_LT(nmse(y, ref), 1e-12);
  ops::layernorm(x, nullptr, nullptr, 1e-5f, y);
  ref_layernorm(x, nullptr, false, nullptr, 1e-5, ref);
  EXPECT_LT(nmse(y, ref), 1e-12);
  Tensor wbad = randn({D + 1}, 13);
  EXPECT_THROW(ops::layernorm(x, &wbad, nullptr, 1e-6f, y), Error);
}

TEST(CpuOps, RmsNormWholeRow) {
  const int64_t M = 13, D = 96;
  Tensor x = randn({M, D}, 14, 1.5f), w = randn({D}, 15, 0.2f, 1.0f);
  Tensor ref = Tensor::empty({M, D}, DType::F32);
  for (int64_t r = 0; r < M; r++) {
    double s = 0;
    for (int64_t j = 0; j < D; j++) s += double(x.ptr<float>()[r * D + j]) * x.ptr<float>()[r * D + j];
    const double rs = 1.0 / std::sqrt(s / D + 1e-6);
    for (int64_t j = 0; j < D; j++) ref.ptr<float>()[r * D + j] = float(x.ptr<float>()[r * D + j] * rs * w.ptr<float>()[j]);
  }
  ops::rmsnorm(x, w, 1e-6f);
  EXPECT_LT(nmse(x, ref), 1e-12);
}

// RoPE against the formula written out per axis: head_dim 32 -> c = 16 pairs: 6 frame, 5 row, 5 column; head_dim
// 128 -> 22/21/21.
void check_rope(int64_t Dh, int F, int H, int W) {
  const int64_t L = int64_t(F) * H * W, NH = 3;
  Tensor x = randn({L, NH, Dh}, 16 + Dh);
  Tensor ref = x.clone();
  const int64_t c = Dh / 2, chw = c / 3, cf = c - 2 * chw;
  for (int64_t t = 0; t < L; t++) {
    const int64_t f = t / (H * W), h = (t / W) % H, w = t % W;
    for (int64_t hd = 0; hd < NH; hd++)
      for (int64_t p = 0; p < c; p++) {
        double pos, ang;
        if (p < cf) {
          pos = f;
          ang = pos * std::pow(10000.0, -2.0 * p / double(2 * cf));
        } else if (p < cf + chw) {
          pos = h;
          ang = pos * std::pow(10000.0, -2.0 * (p - cf) / double(2 * chw));
        } else {
          pos = w;
          ang = pos * std::pow(10000.0, -2.0 * (p - cf - chw) / double(2 * chw));
        }
        float* v = ref.ptr<float>() + (t * NH + hd) * Dh + 2 * p;
        const double re = v[0], im = v[1];
        v[0] = float(re * std::cos(ang) - im * std::sin(ang));
        v[1] = float(re * std::sin(ang) + im * std::cos(ang));
      }
  }
  ops::rope3d(x, F, H, W);
  EXPECT_LT(nmse(x, ref), 1e-13) << "head_dim " << Dh;
}

TEST(CpuOps, Rope3d) {
  check_rope(32, 3, 4, 5);
  check_rope(128, 2, 3, 4);
  Tensor x = randn({10, 2, 32}, 17);
  EXPECT_THROW(ops::rope3d(x, 2, 2, 2), Error);  // 8 tokens in the grid, 10 in x
}

void ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, double scale) {
  const int64_t Lq = q.size(0), H = q.size(1), D = q.size(2), Lk = k.size(0);
  std::vector<double> s(static_cast<size_t>(Lk));
  for (int64_t h = 0; h < H; h++)
    for (int64_t i = 0; i < Lq; i++) {
      double m = -1e300;
      for (int64_t j = 0; j < Lk; j++) {
        double acc = 0;
        for (int64_t d = 0; d < D; d++) acc += double(q.ptr<float>()[(i * H + h) * D + d]) * k.ptr<float>()[(j * H + h) * D + d];
        s[size_t(j)] = acc * scale;
        m = std::max(m, s[size_t(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < Lk; j++) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - m));
      for (int64_t d = 0; d < D; d++) {
        double acc = 0;
        for (int64_t j = 0; j < Lk; j++) acc += s[size_t(j)] * v.ptr<float>()[(j * H + h) * D + d];
        o.ptr<float>()[(i * H + h) * D + d] = float(acc / sum);
      }
    }
}

TEST(CpuOps, AttentionDense) {
  for (auto dims : std::vector<std::vector<int64_t>>{{45, 77, 3, 32}, {5, 512, 2, 64}, {130, 130, 1, 128}}) {
    const int64_t Lq = dims[0], Lk = dims[1], H = dims[2], D = dims[3];
    Tensor q = randn({Lq, H, D}, 20 + Lq, 1.0f), k = randn({Lk, H, D}, 21 + Lk, 1.0f), v = randn({Lk, H, D}, 22);
    Tensor o = Tensor::empty({Lq, H, D}, DType::F32), ref = Tensor::empty({Lq, H, D}, DType::F32);
    ops::attention(q, k, v, o);
    ref_attention(q, k, v, ref, 1.0 / std::sqrt(double(D)));
    EXPECT_LT(nmse(o, ref), 1e-12) << Lq << "x" << Lk << " heads " << H << " d " << D;
    AttentionOptions opts;
    opts.scale = 0.3f;
    ops::attention(q, k, v, o, opts);
    ref_attention(q, k, v, ref, 0.3);
    EXPECT_LT(nmse(o, ref), 1e-12);
  }
}

TEST(CpuOps, AttentionShapeErrors) {
  Tensor q = randn({4, 2, 8}, 30), k = randn({6, 2, 8}, 31), v = randn({5, 2, 8}, 32);
  Tensor o = Tensor::empty({4, 2, 8}, DType::F32);
  EXPECT_THROW(ops::attention(q, k, v, o), Error);
  Tensor k2 = randn({6, 3, 8}, 33);
  EXPECT_THROW(ops::attention(q, k2, k2, o), Error);
}

TEST(CpuOps, Residuals) {
  const int64_t M = 9, D = 40;
  Tensor x = randn({M, D}, 40), y = randn({M, D}, 41), g = randn({D}, 42);
  Tensor ref = x.clone(), x2 = x.clone();
  for (int64_t i = 0; i < M * D; i++) ref.ptr<float>()[i] += y.ptr<float>()[i] * g.ptr<float>()[i % D];
  ops::gated_residual(x, y, g);
  EXPECT_LT(test::max_abs_diff(x, ref), 1e-5);
  for (int64_t i = 0; i < M * D; i++) ref.ptr<float>()[i] = x2.ptr<float>()[i] + y.ptr<float>()[i];
  ops::add_residual(x2, y);
  EXPECT_LT(test::max_abs_diff(x2, ref), 1e-6);
  Tensor gbad = randn({D - 1}, 43);
  EXPECT_THROW(ops::gated_residual(x, y, gbad), Error);
}

TEST(CpuOps, Activations) {
  Tensor x = randn({1000}, 50, 3.0f), s = x.clone(), g = x.clone();
  ops::silu(s);
  ops::gelu_tanh(g);
  for (int64_t i = 0; i < x.numel(); i++) {
    const double v = x.ptr<float>()[i];
    EXPECT_NEAR(s.ptr<float>()[i], v / (1 + std::exp(-v)), 1e-6 * (1 + std::fabs(v)));
    EXPECT_NEAR(g.ptr<float>()[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))),
                1e-6 * (1 + std::fabs(v)));
  }
  Tensor b = x.to(DType::BF16);
  ops::silu(b);
  EXPECT_LT(nmse(b, s), 1e-4);
}

TEST(CpuOps, Cast) {
  Tensor x = randn({7, 33}, 60);
  Tensor b = Tensor::empty({7, 33}, DType::BF16), h = Tensor::empty({7, 33}, DType::F16),
         back = Tensor::empty({7, 33}, DType::F32);
  ops::cast(x, b);
  ops::cast(b, back);
  for (int64_t i = 0; i < x.numel(); i++)
    EXPECT_EQ(back.ptr<float>()[i], bf16_to_f32(f32_to_bf16(x.ptr<float>()[i])));
  ops::cast(x, h);
  ops::cast(h, back);
  EXPECT_LT(nmse(back, x), 1e-6);
  Tensor bad = Tensor::empty({7, 32}, DType::F32);
  EXPECT_THROW(ops::cast(x, bad), Error);
  // Non-contiguous source.
  Tensor xt = x.transpose(0, 1), dst = Tensor::empty({33, 7}, DType::F32);
  ops::cast(xt, dst);
  EXPECT_EQ(test::max_abs_diff(dst, xt.contiguous()), 0.0);
}

TEST(CpuOps, ParseAttentionMode) {
  EXPECT_EQ(parse_attention_mode("dense"), AttentionMode::Dense);
  EXPECT_EQ(parse_attention_mode("sagesla"), AttentionMode::SageSLA);
  EXPECT_STREQ(attention_mode_name(AttentionMode::SLA), "sla");
  EXPECT_THROW(parse_attention_mode("flash"), Error);
}

}  // namespace
}  // namespace td
