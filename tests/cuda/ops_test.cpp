// Every CUDA op against its CPU op (td::cpu::<op>, the fp32 reference) on random non-zero inputs at odd sizes.
//
// Inputs are rounded to the device dtype first and the CPU reference runs on exactly those values, so the
// measured error is the device op's own (fp32 vs double statistics, bf16 output rounding, bf16 P in attention).
// NMSE limits: bf16 output rounding alone gives ~3e-6 over many elements (at most 2^-16 = 1.53e-5, see
// within_bf16_bounds), so 1e-5 for norms/elementwise with bf16 output, 1e-4 for
// attention (P is also rounded to bf16), much tighter for f32 outputs. Outputs live inside guarded buffers whose
// sentinel bytes before and after must survive (out-of-bounds writes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "cpu/activations.h"
#include "cpu/attention.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "cpu/residual.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope3d.h"
#include "cuda/activations.h"
#include "cuda/attention.h"
#include "cuda/cast.h"
#include "cuda/cuda_common.cuh"
#include "cuda/layernorm.h"
#include "cuda/linear.h"
#include "cuda/linear_config.h"
#include "ops/ops.h"
#include "ops/w8a8.h"
#include "cuda/residual.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope3d.h"
#include "test_util.h"

namespace td {
namespace {

using test::nmse;
using test::randn;

constexpr uint8_t kSentinel = 0xA7;

// Host f32 values as they are after rounding to `dt` (so the CPU reference sees what the GPU sees).
Tensor rounded(const Tensor& host_f32, DType dt) { return dt == DType::F32 ? host_f32 : host_f32.to(dt).to(DType::F32); }

Tensor to_dev(const Tensor& host_f32, DType dt) { return host_f32.to(dt).to(Device::CUDA); }

// A device tensor embedded in a larger buffer filled with sentinel bytes: `guard` elements before and after.
struct Guarded {
  Tensor buf, t;
  int64_t guard = 0;
};

Guarded guarded(const Shape& shape, DType dt, int64_t guard = 64) {
  Guarded g;
  g.guard = guard;
  const int64_t n = shape_numel(shape);
  g.buf = Tensor::empty({n + 2 * guard}, dt, Device::CUDA);
  Tensor h = Tensor::empty({n + 2 * guard}, dt);
  std::memset(h.data(), kSentinel, h.nbytes());
  g.buf.copy_from(h);
  g.t = g.buf.slice(0, guard, guard + n).view(shape);
  return g;
}

// Same, initialised with `host_f32` converted to dt (for in-place ops).
Guarded guarded_from(const Tensor& host_f32, DType dt, int64_t guard = 64) {
  Guarded g = guarded(host_f32.shape(), dt, guard);
  g.t.copy_from(host_f32.to(dt));
  return g;
}

::testing::AssertionResult guards_intact(const Guarded& g) {
  Tensor h = g.buf.to(Device::CPU);
  const size_t es = dtype_size(h.dtype()), gb = size_t(g.guard) * es, total = h.nbytes();
  const uint8_t* p = static_cast<const uint8_t*>(h.data());
  for (size_t i = 0; i < gb; i++)
    if (p[i] != kSentinel) return ::testing::AssertionFailure() << "guard byte " << i << " before the output changed";
  for (size_t i = total - gb; i < total; i++)
    if (p[i] != kSentinel)
      return ::testing::AssertionFailure() << "guard byte " << (i - (total - gb)) << " after the output changed";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- linear

// bf16 outputs are checked element by element against bounds that follow from the dtype, plus an NMSE limit once
// the output is large enough for statistics.
//  - Round-to-nearest bf16 moves a value v by at most half an ulp, at most 2^-8 |v|: one ulp of the reference
//    covers that and a flipped rounding (fp32 sums in another order).
//  - For some shapes (seen at M=5 K=17 N=9, alignment 2) cuBLASLt's fused bias/GELU kernel rounds the product x.w to
//    bf16 before adding the bias: the H100 result matches round(gelu(round(x.w) + b)) exactly, NMSE 1.338e-5 vs 1e-5
//    before. That error is half an ulp of |x.w| (times GELU's slope, at most 1.13), large next to a small output
//    when the bias cancels the product, so it is part of the bound.
//  - 1e-3 x the output RMS of slack for the epilogue's tanh near zero.
// NMSE: bf16 rounding averages ~3e-6 over many elements, so outputs of >= 1024 elements must stay under 1e-5; a
// few dozen elements are dominated by their largest values and are left to the element-wise bound.
::testing::AssertionResult within_bf16_bounds(const Tensor& y_dev, const Tensor& ref, const Tensor& prod, bool gelu) {
  Tensor y = y_dev.to_f32_host().contiguous();
  const float* yp = y.ptr<float>();
  const float* rp = ref.ptr<float>();
  const float* pp = prod.ptr<float>();
  auto ulp = [](double v) {
    int e = 0;
    std::frexp(v, &e);  // |v| in [2^(e-1), 2^e)
    return v == 0 ? 0.0 : std::ldexp(1.0, e - 8);  // bf16: 8 significant bits
  };
  double ss = 0;
  for (int64_t i = 0; i < ref.numel(); i++) ss += double(rp[i]) * rp[i];
  const double slack = 1e-3 * std::sqrt(ss / double(std::max<int64_t>(ref.numel(), 1)));
  for (int64_t i = 0; i < ref.numel(); i++) {
    const double tol = ulp(rp[i]) + 0.5 * ulp(pp[i]) * (gelu ? 1.13 : 1.0) + slack;
    if (!(std::fabs(double(yp[i]) - rp[i]) <= tol))
      return ::testing::AssertionFailure() << "element " << i << ": " << yp[i] << " vs reference " << rp[i]
                                           << " (x.w " << pp[i] << ", bound " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

// limit: the NMSE limit for f32 outputs; bf16 outputs use within_bf16_bounds (and NMSE 1e-5 from 1024 elements).
void check_linear(int64_t M, int64_t K, int64_t N, int bias_kind, DType out, Epilogue ep, double limit,
                  uint64_t seed) {
  SCOPED_TRACE(cat("M=", M, " K=", K, " N=", N, " bias=", bias_kind, " out=", dtype_name(out),
                   " gelu=", ep == Epilogue::GeluTanh));
  Tensor x = rounded(randn({M, K}, seed), DType::BF16);
  Tensor w = rounded(randn({N, K}, seed + 1, 1.f / std::sqrt(float(K))), DType::BF16);
  Tensor b = rounded(randn({N}, seed + 2, 0.5f), bias_kind == 1 ? DType::BF16 : DType::F32);
  // With a bf16 output, an f32 bias is rounded to bf16 so cuBLASLt can fuse it (linear_config.h): the reference
  // adds the bias the device adds.
  const bool bias_rounded = bias_kind == 2 && out == DType::BF16 && cuda::linear_config::kRoundF32BiasForFusion;
  Tensor b_ref = bias_rounded ? rounded(b, DType::BF16) : b;
  Tensor ref = Tensor::empty({M, N}, DType::F32);
  cpu::linear(x, w, bias_kind ? &b_ref : nullptr, ref, ep);

  Tensor xd = to_dev(x, DType::BF16), wd = to_dev(w, DType::BF16);
  Tensor bd = to_dev(b, bias_kind == 1 ? DType::BF16 : DType::F32);
  Guarded y = guarded({M, N}, out);
  cuda::linear(xd, wd, bias_kind ? &bd : nullptr, y.t, ep);
  if (out == DType::BF16) {
    Tensor prod = Tensor::empty({M, N}, DType::F32);
    cpu::linear(x, w, nullptr, prod, Epilogue::None);
    if (M * N >= 1024) EXPECT_LT(nmse(y.t, ref), 1e-5);
    EXPECT_TRUE(within_bf16_bounds(y.t, ref, prod, ep == Epilogue::GeluTanh));
  } else {
    EXPECT_LT(nmse(y.t, ref), limit);
  }
  EXPECT_TRUE(guards_intact(y));
}

// Strided views of device tensors copy to the host (and back through contiguous()) element for element: a slice of
// the last dim, a permutation, a view that starts at an offset. (to(Device::CPU) of a strided device view used to
// recurse without end.)
TEST(CudaTensor, StridedDeviceViewsCopyExactly) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor h = test::randn({4, 6, 10}, 11);
  Tensor d = h.to(Device::CUDA);
  const std::pair<Tensor, Tensor> cases[] = {{h.slice(2, 3, 8), d.slice(2, 3, 8)},
                                             {h.permute({2, 0, 1}), d.permute({2, 0, 1})},
                                             {h.slice(0, 1, 3).transpose(1, 2), d.slice(0, 1, 3).transpose(1, 2)}};
  for (const auto& c : cases) {
    ASSERT_FALSE(c.second.is_contiguous());
    EXPECT_EQ(test::max_abs_diff(c.second.to(Device::CPU), c.first.contiguous()), 0.0);
    Tensor back = c.second.contiguous();
    EXPECT_TRUE(back.is_cuda() && back.is_contiguous());
    EXPECT_EQ(test::max_abs_diff(back.to(Device::CPU), c.first.contiguous()), 0.0);
  }
}

TEST(CudaOps, Linear) {
  TD_SKIP_WITHOUT_CUDA();
  check_linear(37, 64, 40, 0, DType::BF16, Epilogue::None, 0, 1);
  check_linear(37, 72, 48, 1, DType::BF16, Epilogue::None, 0, 2);
  check_linear(37, 72, 48, 2, DType::BF16, Epilogue::GeluTanh, 0, 3);
  check_linear(131, 256, 136, 2, DType::F32, Epilogue::None, 1e-9, 4);
  check_linear(131, 256, 136, 1, DType::F32, Epilogue::GeluTanh, 1e-7, 5);  // the epilogue's tanh may be approximate
  check_linear(257, 512, 384, 2, DType::BF16, Epilogue::GeluTanh, 0, 6);
  check_linear(1, 128, 64, 2, DType::F32, Epilogue::None, 1e-9, 7);  // the time-embedding MLP has M = 1
}

// Shapes above linear_config::kAutotuneMinFlops: the plan times every heuristic candidate on first use, then runs
// the winner; the result must be right for each epilogue/bias combination (and the second call reuses the plan).
TEST(CudaOps, LinearAutotunedShapes) {
  TD_SKIP_WITHOUT_CUDA();
  ASSERT_GE(2.0 * 1024 * 1024 * 1040, cuda::linear_config::kAutotuneMinFlops);
  for (int rep = 0; rep < 2; rep++) {
    check_linear(1024, 1024, 1040, 2, DType::BF16, Epilogue::GeluTanh, 0, 31);
    check_linear(1024, 1024, 1040, 2, DType::BF16, Epilogue::None, 0, 32);
    check_linear(1024, 1024, 1040, 1, DType::BF16, Epilogue::None, 0, 33);
    check_linear(1024, 1024, 1040, 0, DType::BF16, Epilogue::None, 0, 34);
    check_linear(1024, 1024, 1040, 2, DType::F32, Epilogue::None, 1e-9, 35);
  }
}

TEST(CudaOps, LinearUnalignedShapes) {
  TD_SKIP_WITHOUT_CUDA();
  check_linear(37, 45, 33, 2, DType::F32, Epilogue::None, 1e-9, 11);
  check_linear(5, 17, 9, 1, DType::BF16, Epilogue::GeluTanh, 0, 12);
}

// A row-strided input (a column slice of a wider matrix) and an output that is a row-strided view.
TEST(CudaOps, LinearStridedViews) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 37, K = 64, N = 48;
  Tensor wide = rounded(randn({M, 3 * K}, 21), DType::BF16);
  Tensor w = rounded(randn({N, K}, 22, 0.125f), DType::BF16);
  Tensor x = wide.slice(1, K, 2 * K).contiguous();
  Tensor ref = Tensor::empty({M, N}, DType::F32);
  cpu::linear(x, w, nullptr, ref, Epilogue::None);
  Tensor wd = to_dev(w, DType::BF16), wide_d = to_dev(wide, DType::BF16);
  Tensor xd = wide_d.slice(1, K, 2 * K);
  Tensor yfull = Tensor::zeros({M, 2 * N}, DType::F32, Device::CUDA);
  Tensor y = yfull.slice(1, N, 2 * N);
  cuda::linear(xd, wd, nullptr, y, Epilogue::None);
  Tensor yh = yfull.to(Device::CPU);
  EXPECT_LT(nmse(yh.slice(1, N, 2 * N).contiguous(), ref), 1e-9);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) ASSERT_EQ(yh.ptr<float>()[i * 2 * N + j], 0.f) << "wrote outside the view";
}

// cuBLASLt's GELU epilogue must be the tanh form (PyTorch approximate='tanh'), not erf: the two differ by up to
// 4.7e-4 near x = 2.7, far above the f32 GEMM's error here (the pre-activations are exact: x is one-hot).
TEST(CudaOps, LinearGeluEpilogueIsTanh) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 8, K = 16, N = 512;
  Tensor x = Tensor::zeros({M, K}, DType::F32);
  for (int64_t i = 0; i < M; i++) x.ptr<float>()[i * K] = 1.f;
  Tensor w = Tensor::zeros({N, K}, DType::F32);
  for (int64_t n = 0; n < N; n++) w.ptr<float>()[n * K] = bf16_to_f32(f32_to_bf16(-4.f + 8.f * float(n) / N));
  Tensor wd = to_dev(w, DType::BF16), xd = to_dev(x, DType::BF16);
  Tensor y = Tensor::empty({M, N}, DType::F32, Device::CUDA);
  cuda::linear(xd, wd, nullptr, y, Epilogue::GeluTanh);
  Tensor yh = y.to(Device::CPU);
  double max_tanh = 0, max_erf = 0;
  for (int64_t n = 0; n < N; n++) {
    const double v = w.ptr<float>()[n * K];
    const double gt = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    const double ge = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    max_tanh = std::max(max_tanh, std::fabs(yh.ptr<float>()[n] - gt));
    max_erf = std::max(max_erf, std::fabs(yh.ptr<float>()[n] - ge));
  }
  EXPECT_LT(max_tanh, 5e-5) << "GELU epilogue is not tanh-GELU (max diff to erf-GELU " << max_erf
                            << "); set linear_config::kUseCublasGelu = false";
}

TEST(CudaOps, LinearRejectsBadInput) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor x = Tensor::zeros({4, 8}, DType::F32, Device::CUDA), w = Tensor::zeros({8, 8}, DType::BF16, Device::CUDA);
  Tensor y = Tensor::zeros({4, 8}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::linear(x, w, nullptr, y, Epilogue::None), Error);  // f32 input
  Tensor xb = Tensor::zeros({4, 7}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::linear(xb, w, nullptr, y, Epilogue::None), Error);  // K mismatch
}

// ---------------------------------------------------------------- layernorm

void check_ln(int64_t M, int64_t D, DType in, DType out, bool modulate, int affine_kind, uint64_t seed,
              int64_t guard = 64) {
  SCOPED_TRACE(cat("M=", M, " D=", D, " in=", dtype_name(in), " out=", dtype_name(out), " modulate=", modulate,
                   " affine=", affine_kind));
  // Non-zero mean and non-unit scale so the statistics matter.
  Tensor x = rounded(randn({M, D}, seed, 3.f, 1.5f), in);
  Tensor a = randn({D}, seed + 1, 0.5f), b = randn({D}, seed + 2, 0.5f);
  const DType pd = affine_kind == 2 ? DType::BF16 : DType::F32;
  a = rounded(a, pd);
  b = rounded(b, pd);
  Tensor ref = Tensor::empty({M, D}, DType::F32);
  Tensor ad = to_dev(a, pd), bd = to_dev(b, pd);
  Guarded y = guarded({M, D}, out, guard);
  Tensor xd = to_dev(x, in);
  if (modulate) {
    cpu::layernorm_modulate(x, b, a, 1e-6f, ref);
    cuda::layernorm_modulate(xd, bd, ad, 1e-6f, y.t);
  } else {
    cpu::layernorm(x, affine_kind ? &a : nullptr, affine_kind ? &b : nullptr, 1e-6f, ref);
    cuda::layernorm(xd, affine_kind ? &ad : nullptr, affine_kind ? &bd : nullptr, 1e-6f, y.t);
  }
  EXPECT_LT(nmse(y.t, ref), out == DType::BF16 ? 1e-5 : 1e-10);
  EXPECT_TRUE(guards_intact(y));
}

TEST(CudaOps, LayerNormModulate) {
  TD_SKIP_WITHOUT_CUDA();
  check_ln(37, 1536, DType::F32, DType::BF16, true, 0, 31);
  check_ln(37, 1536, DType::BF16, DType::BF16, true, 0, 32);
  check_ln(37, 1536, DType::F32, DType::F32, true, 0, 33);
  check_ln(131, 100, DType::F32, DType::BF16, true, 0, 34);  // D % 8 != 0: scalar path
  check_ln(3, 5120, DType::F32, DType::BF16, true, 0, 35);
  check_ln(37, 64, DType::F32, DType::BF16, true, 0, 36, 3);  // misaligned rows: scalar path
  check_ln(40000, 256, DType::F32, DType::BF16, true, 0, 37);  // more rows than the register kernel's grid
}

TEST(CudaOps, LayerNormAffine) {
  TD_SKIP_WITHOUT_CUDA();
  check_ln(37, 1536, DType::F32, DType::BF16, false, 1, 41);
  check_ln(37, 1536, DType::F32, DType::BF16, false, 2, 42);  // bf16 weight/bias
  check_ln(37, 200, DType::F32, DType::F32, false, 0, 43);    // no affine
  check_ln(37, 75, DType::BF16, DType::F32, false, 1, 44);
}

// The fused residual + LayerNorm against the CPU's two passes: the updated stream and the norm output, with and
// without gate, modulated and affine, the input aliasing the output (as in the DiT), and widths that take the
// unfused fallback (5120, 200).
TEST(CudaOps, ResidualLayerNorm) {
  TD_SKIP_WITHOUT_CUDA();
  uint64_t seed = 70;
  for (int64_t D : {1536, 5120, 200})
    for (bool modulate : {false, true})
      for (bool gated : {false, true})
        for (bool alias : {false, true}) {
          SCOPED_TRACE(cat("D=", D, " modulate=", modulate, " gated=", gated, " alias=", alias));
          const int64_t M = 45;
          Tensor x = randn({M, D}, seed++, 2.f, 0.5f);
          Tensor y = rounded(randn({M, D}, seed++), DType::BF16);
          Tensor g = randn({D}, seed++, 0.5f), mul = randn({D}, seed++, 0.3f), add = randn({D}, seed++, 0.3f);
          Tensor xc = x.clone(), hc = Tensor::empty({M, D}, DType::F32);
          cpu::residual_layernorm(xc, y, gated ? &g : nullptr, &mul, &add, modulate, 1e-6f, hc);
          Tensor xd = x.to(Device::CUDA), yd = to_dev(y, DType::BF16), gd = g.to(Device::CUDA);
          Tensor md = mul.to(Device::CUDA), ad = add.to(Device::CUDA);
          Tensor hd = alias ? yd : Tensor::empty({M, D}, DType::BF16, Device::CUDA);
          cuda::residual_layernorm(xd, yd, gated ? &gd : nullptr, &md, &ad, modulate, 1e-6f, hd);
          EXPECT_LT(nmse(xd, xc), 1e-12);
          EXPECT_LT(nmse(hd, hc), 1e-5);
        }
}

// ---------------------------------------------------------------- rmsnorm

TEST(CudaOps, RmsNorm) {
  TD_SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t M, D;
    DType dt;
    int64_t guard;
  } cases[] = {{37, 1536, DType::BF16, 64}, {37, 1536, DType::F32, 64}, {131, 75, DType::BF16, 64},
               {9, 5120, DType::BF16, 64},  {37, 128, DType::BF16, 1}};
  uint64_t seed = 50;
  for (const Case& c : cases) {
    SCOPED_TRACE(cat("M=", c.M, " D=", c.D, " ", dtype_name(c.dt), " guard=", c.guard));
    Tensor x = rounded(randn({c.M, c.D}, seed++, 2.f, 0.3f), c.dt);
    Tensor w = rounded(randn({c.D}, seed++, 0.5f, 1.f), DType::BF16);
    Tensor ref = x.clone();
    cpu::rmsnorm(ref, w, 1e-6f);
    Guarded g = guarded_from(x, c.dt, c.guard);
    Tensor wd = to_dev(w, DType::BF16);
    cuda::rmsnorm(g.t, wd, 1e-6f);
    EXPECT_LT(nmse(g.t, ref), c.dt == DType::BF16 ? 1e-5 : 1e-10);
    EXPECT_TRUE(guards_intact(g));
  }
}

// q as a column slice of a fused [L, 3D] projection: only its columns change.
TEST(CudaOps, RmsNormStridedRows) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 37, D = 256;
  Tensor fused = rounded(randn({M, 3 * D}, 60), DType::BF16);
  Tensor w = randn({D}, 61, 0.5f, 1.f);
  Tensor ref = fused.slice(1, D, 2 * D).contiguous();
  cpu::rmsnorm(ref, w, 1e-6f);
  Tensor fd = to_dev(fused, DType::BF16), wd = to_dev(w, DType::F32);
  Tensor q = fd.slice(1, D, 2 * D);
  cuda::rmsnorm(q, wd, 1e-6f);
  Tensor out = fd.to_f32_host();
  EXPECT_LT(nmse(out.slice(1, D, 2 * D).contiguous(), ref), 1e-5);
  EXPECT_EQ(test::max_abs_diff(out.slice(1, 0, D).contiguous(), fused.slice(1, 0, D).contiguous()), 0.0);
  EXPECT_EQ(test::max_abs_diff(out.slice(1, 2 * D, 3 * D).contiguous(), fused.slice(1, 2 * D, 3 * D).contiguous()),
            0.0);
}

// ---------------------------------------------------------------- rope3d

TEST(CudaOps, Rope3d) {
  TD_SKIP_WITHOUT_CUDA();
  struct Case {
    int f, h, w;
    int64_t H, Dh;
    DType dt;
  } cases[] = {{3, 5, 9, 3, 128, DType::BF16}, {1, 1, 131, 2, 128, DType::BF16}, {2, 3, 4, 4, 64, DType::BF16},
               {3, 5, 9, 3, 128, DType::F32},  {21, 2, 3, 1, 128, DType::BF16}};
  uint64_t seed = 70;
  for (const Case& c : cases) {
    const int64_t L = int64_t(c.f) * c.h * c.w;
    SCOPED_TRACE(cat("grid ", c.f, "x", c.h, "x", c.w, " H=", c.H, " Dh=", c.Dh, " ", dtype_name(c.dt)));
    Tensor x = rounded(randn({L, c.H, c.Dh}, seed++), c.dt);
    Tensor ref = x.clone();
    cpu::rope3d(ref, c.f, c.h, c.w, 10000.f);
    Guarded g = guarded_from(x, c.dt);
    cuda::rope3d(g.t, c.f, c.h, c.w, 10000.f);
    EXPECT_LT(nmse(g.t, ref), c.dt == DType::BF16 ? 1e-5 : 1e-11);
    EXPECT_TRUE(guards_intact(g));
  }
}

// Large positions (the angle precision matters most there): frame 20, row/column up to 103.
TEST(CudaOps, Rope3dLargePositions) {
  TD_SKIP_WITHOUT_CUDA();
  const int f = 21, h = 2, w = 104;
  Tensor x = randn({int64_t(f) * h * w, 1, 128}, 75);
  Tensor ref = x.clone();
  cpu::rope3d(ref, f, h, w, 10000.f);
  Tensor xd = to_dev(x, DType::F32);
  cuda::rope3d(xd, f, h, w, 10000.f);
  EXPECT_LT(nmse(xd, ref), 1e-11);
}

TEST(CudaOps, Rope3dStridedView) {
  TD_SKIP_WITHOUT_CUDA();
  const int f = 2, h = 3, w = 5;
  const int64_t L = f * h * w, H = 2, Dh = 128;
  Tensor fused = rounded(randn({L, 2, H, Dh}, 77), DType::BF16);
  Tensor ref = fused.select(1, 1).contiguous();
  cpu::rope3d(ref, f, h, w, 10000.f);
  Tensor fd = to_dev(fused, DType::BF16);
  Tensor k = fd.select(1, 1);
  cuda::rope3d(k, f, h, w, 10000.f);
  Tensor out = fd.to_f32_host();
  EXPECT_LT(nmse(out.select(1, 1).contiguous(), ref), 1e-5);
  EXPECT_EQ(test::max_abs_diff(out.select(1, 0).contiguous(), fused.select(1, 0).contiguous()), 0.0);
}

// ---------------------------------------------------------------- attention

struct AttnCase {
  int64_t Lq, Lk, H, Dh;
  float q_scale;  // larger -> peakier softmax
};

// Runs `variant` (-1: the default cuda::attention) with q/k/v as views of fused [L, 3, H, Dh] buffers.
void check_attention(const AttnCase& c, int variant, uint64_t seed, double limit = 1e-4) {
  SCOPED_TRACE(cat("Lq=", c.Lq, " Lk=", c.Lk, " H=", c.H, " Dh=", c.Dh, " qscale=", c.q_scale, " variant=",
                   variant < 0 ? "default" : cuda::attention_variant_name(variant)));
  Tensor qf = rounded(randn({c.Lq, 3, c.H, c.Dh}, seed, c.q_scale), DType::BF16);
  Tensor kvf = rounded(randn({c.Lk, 3, c.H, c.Dh}, seed + 1), DType::BF16);
  Tensor q = qf.select(1, 0).contiguous(), k = kvf.select(1, 1).contiguous(), v = kvf.select(1, 2).contiguous();
  Tensor ref = Tensor::empty({c.Lq, c.H, c.Dh}, DType::F32);
  cpu::attention(q, k, v, ref, AttentionOptions{});

  Tensor qfd = to_dev(qf, DType::BF16), kvfd = to_dev(kvf, DType::BF16);
  Tensor qd = qfd.select(1, 0), kd = kvfd.select(1, 1), vd = kvfd.select(1, 2);
  Guarded o = guarded({c.Lq, c.H, c.Dh}, DType::BF16);
  if (variant < 0)
    cuda::attention(qd, kd, vd, o.t, AttentionOptions{});
  else
    cuda::attention_variant(variant, qd, kd, vd, o.t, AttentionOptions{});
  EXPECT_LT(nmse(o.t, ref), limit);
  EXPECT_TRUE(guards_intact(o));
}

TEST(CudaOps, AttentionDense) {
  TD_SKIP_WITHOUT_CUDA();
  const AttnCase cases[] = {
      {131, 131, 3, 128, 1.f},  // partial q and k tiles
      {131, 77, 2, 128, 1.f},   // Lk smaller than one 128-row tile, not a multiple of 64
      {200, 512, 2, 128, 1.f},  // cross-attention key count
      {64, 1, 2, 128, 1.f},     // a single key
      {37, 300, 2, 64, 1.f},    // head_dim 64
      {131, 131, 2, 128, 4.f},  // peaky softmax (large logits): max subtraction must be exact
  };
  uint64_t seed = 100;
  for (const AttnCase& c : cases) check_attention(c, -1, seed += 2);
}

TEST(CudaOps, AttentionAllVariants) {
  TD_SKIP_WITHOUT_CUDA();
  uint64_t seed = 200;
  for (int i = 0; i < cuda::attention_variant_count(); i++) {
    const int64_t Dh = cuda::attention_variant_head_dim(i);
    check_attention({131, 157, 2, Dh, 1.f}, i, seed += 2);
    check_attention({300, 64, 1, Dh, 2.f}, i, seed += 2);
  }
}

// Long enough for many pipeline stages; compares against the fp32 CPU reference.
TEST(CudaOps, AttentionLonger) {
  TD_SKIP_WITHOUT_CUDA();
  check_attention({1000, 1100, 2, 128, 1.f}, -1, 300);
}

// On sm_90 cuda::attention runs the Hopper kernel for head_dim 128 (attention_sm90.cu): a persistent grid of one CTA
// per SM whose producer runs ahead into the next (query tile, head) item. These shapes give several items per CTA
// (Lq = 20,000 x 3 heads = 471 tiles of 128 rows), key counts that wrap the two-stage ring with a partial last tile,
// strided q / k / v views, and an odd tail of query rows; the reference is the mma.sync kernel (checked against the
// CPU above) and the CPU on a short case.
TEST(CudaOps, AttentionHopperMatchesMmaSync) {
  TD_SKIP_WITHOUT_CUDA();
  if (cuda::cc() != 90) GTEST_SKIP() << "the Hopper attention kernel needs sm_90";
  int fa2 = -1;
  for (int i = 0; i < cuda::attention_variant_count(); i++)
    if (std::string(cuda::attention_variant_name(i)) == "d128_128x64_w4_split0_mb2") fa2 = i;
  ASSERT_GE(fa2, 0);
  const AttnCase cases[] = {{20000, 512, 3, 128, 1.f}, {20001, 1000, 3, 128, 2.f}, {5000, 77, 4, 128, 1.f},
                            {300, 4000, 2, 128, 4.f}};
  uint64_t seed = 900;
  for (const AttnCase& c : cases) {
    SCOPED_TRACE(cat("Lq=", c.Lq, " Lk=", c.Lk, " H=", c.H));
    Tensor qf = rounded(randn({c.Lq, 3, c.H, c.Dh}, seed += 2, c.q_scale), DType::BF16);
    Tensor kvf = rounded(randn({c.Lk, 3, c.H, c.Dh}, seed + 1), DType::BF16);
    Tensor qfd = to_dev(qf, DType::BF16), kvfd = to_dev(kvf, DType::BF16);
    Tensor qd = qfd.select(1, 0), kd = kvfd.select(1, 1), vd = kvfd.select(1, 2);
    Guarded o = guarded({c.Lq, c.H, c.Dh}, DType::BF16);
    Tensor ref = Tensor::empty({c.Lq, c.H, c.Dh}, DType::BF16, Device::CUDA);
    cuda::attention(qd, kd, vd, o.t, AttentionOptions{});
    cuda::attention_variant(fa2, qd, kd, vd, ref, AttentionOptions{});
    const double e = nmse(o.t, ref.to_f32_host());
    std::printf("[attention] Hopper vs mma.sync Lq=%lld Lk=%lld H=%lld: NMSE %.3g\n", (long long)c.Lq,
                (long long)c.Lk, (long long)c.H, e);
    EXPECT_LT(e, 3e-5);  // H100: 1.4e-6 .. 7.3e-6 (P rounds to bf16 against different running maxima)
    EXPECT_TRUE(guards_intact(o));
  }
}

// The int8 output (the o-projection's W8A8 activation) against quantize_act_int8 of the bf16 output of the same
// deterministic kernel: codes within one (bf16 rounding can cross a rounding boundary), scales within bf16's
// precision, and the partial last query tile's rows written too.
TEST(CudaOps, AttentionInt8OutputMatchesQuantizedBf16) {
  TD_SKIP_WITHOUT_CUDA();
  for (const AttnCase& c : {AttnCase{131, 512, 3, 128, 1.f}, AttnCase{300, 77, 2, 128, 2.f}}) {
    Tensor qd = to_dev(randn({c.Lq, c.H, c.Dh}, 400 + c.Lq, c.q_scale), DType::BF16);
    Tensor kd = to_dev(randn({c.Lk, c.H, c.Dh}, 401 + c.Lq), DType::BF16);
    Tensor vd = to_dev(randn({c.Lk, c.H, c.Dh}, 402 + c.Lq), DType::BF16);
    Tensor o = Tensor::empty({c.Lq, c.H, c.Dh}, DType::BF16, Device::CUDA);
    cuda::attention(qd, kd, vd, o, AttentionOptions{});
    ops::Int8Act ref;
    ops::quantize_act_int8(o.view({c.Lq, c.H * c.Dh}), ref);
    ASSERT_TRUE(ops::attention_int8_supported(qd, AttentionOptions{}));
    ops::Int8Act got;
    ops::attention_int8(qd, kd, vd, got, AttentionOptions{});
    ASSERT_EQ(got.q.shape(), ref.q.shape());
    ASSERT_EQ(got.scale.shape(), ref.scale.shape());
    Tensor gq = got.q.to(Device::CPU), rq = ref.q.to(Device::CPU), gs = got.scale.to(Device::CPU),
           rs = ref.scale.to(Device::CPU);
    int64_t worse = 0, same = 0;
    for (int64_t i = 0; i < gq.numel(); i++) {
      const int d = std::abs(int(gq.ptr<int8_t>()[i]) - int(rq.ptr<int8_t>()[i]));
      worse += d > 1;
      same += d == 0;
    }
    double worst_scale = 0;
    for (int64_t i = 0; i < gs.numel(); i++)
      worst_scale = std::max(worst_scale, std::fabs(double(gs.ptr<float>()[i]) / rs.ptr<float>()[i] - 1.0));
    EXPECT_EQ(worse, 0);
    EXPECT_GT(double(same) / double(gq.numel()), 0.9);
    EXPECT_LT(worst_scale, 1.0 / 128);
  }
}

TEST(CudaOps, AttentionCustomScale) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t L = 70, H = 2, Dh = 64;
  Tensor q = rounded(randn({L, H, Dh}, 310), DType::BF16), k = rounded(randn({L, H, Dh}, 311), DType::BF16);
  Tensor v = rounded(randn({L, H, Dh}, 312), DType::BF16);
  AttentionOptions opts;
  opts.scale = 0.3f;
  Tensor ref = Tensor::empty({L, H, Dh}, DType::F32);
  cpu::attention(q, k, v, ref, opts);
  Tensor qd = to_dev(q, DType::BF16), kd = to_dev(k, DType::BF16), vd = to_dev(v, DType::BF16);
  Tensor o = Tensor::empty({L, H, Dh}, DType::BF16, Device::CUDA);
  cuda::attention(qd, kd, vd, o, opts);
  EXPECT_LT(nmse(o, ref), 1e-4);
}

TEST(CudaOps, AttentionRejectsBadInput) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor q = Tensor::zeros({8, 2, 96}, DType::BF16, Device::CUDA);
  Tensor o = Tensor::zeros({8, 2, 96}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::attention(q, q, q, o), Error);  // head_dim 96
  Tensor qf = Tensor::zeros({8, 2, 64}, DType::F32, Device::CUDA), of = Tensor::zeros({8, 2, 64}, DType::F32,
                                                                                      Device::CUDA);
  EXPECT_THROW(cuda::attention(qf, qf, qf, of), Error);  // f32
  Tensor q64 = Tensor::zeros({8, 2, 64}, DType::BF16, Device::CUDA), k0 = Tensor::zeros({0, 2, 64}, DType::BF16,
                                                                                        Device::CUDA);
  Tensor o64 = Tensor::zeros({8, 2, 64}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::attention(q64, k0, k0, o64), Error);  // no keys
}

// ---------------------------------------------------------------- residual

TEST(CudaOps, GatedResidual) {
  TD_SKIP_WITHOUT_CUDA();
  struct Case {
    int64_t M, D;
    DType ydt;
  } cases[] = {{37, 1536, DType::BF16}, {37, 1536, DType::F32}, {131, 75, DType::BF16}};
  uint64_t seed = 400;
  for (const Case& c : cases) {
    SCOPED_TRACE(cat("M=", c.M, " D=", c.D, " y ", dtype_name(c.ydt)));
    Tensor x = randn({c.M, c.D}, seed++, 2.f);
    Tensor y = rounded(randn({c.M, c.D}, seed++), c.ydt);
    Tensor gate = randn({c.D}, seed++, 0.5f);
    Tensor ref = x.clone();
    cpu::gated_residual(ref, y, gate);
    Guarded xg = guarded_from(x, DType::F32);
    Tensor yd = to_dev(y, c.ydt), gd = to_dev(gate, DType::F32);
    cuda::gated_residual(xg.t, yd, gd);
    EXPECT_LT(nmse(xg.t, ref), 1e-12);
    EXPECT_TRUE(guards_intact(xg));

    Tensor ref2 = x.clone();
    cpu::add_residual(ref2, y);
    Guarded xg2 = guarded_from(x, DType::F32, 3);  // misaligned: scalar path
    cuda::add_residual(xg2.t, yd);
    EXPECT_LT(nmse(xg2.t, ref2), 1e-12);
    EXPECT_TRUE(guards_intact(xg2));
  }
}

// ---------------------------------------------------------------- activations and cast

TEST(CudaOps, Activations) {
  TD_SKIP_WITHOUT_CUDA();
  const Shape shapes[] = {{37, 41}, {64, 128}};
  uint64_t seed = 500;
  for (const Shape& s : shapes) {
    for (DType dt : {DType::BF16, DType::F32}) {
      for (int which = 0; which < 2; which++) {
        SCOPED_TRACE(cat(shape_str(s), " ", dtype_name(dt), which ? " gelu_tanh" : " silu"));
        Tensor x = rounded(randn(s, seed++, 3.f), dt);
        Tensor ref = x.clone();
        Guarded g = guarded_from(x, dt);
        if (which) {
          cpu::gelu_tanh(ref);
          cuda::gelu_tanh(g.t);
        } else {
          cpu::silu(ref);
          cuda::silu(g.t);
        }
        EXPECT_LT(nmse(g.t, ref), dt == DType::BF16 ? 1e-5 : 1e-11);
        EXPECT_TRUE(guards_intact(g));
      }
    }
  }
}

TEST(CudaOps, Cast) {
  TD_SKIP_WITHOUT_CUDA();
  const DType types[] = {DType::F32, DType::BF16, DType::F16};
  uint64_t seed = 600;
  for (int64_t n : {int64_t(37 * 41), int64_t(4096)}) {
    for (DType from : types) {
      for (DType to : types) {
        SCOPED_TRACE(cat(n, " ", dtype_name(from), " -> ", dtype_name(to)));
        Tensor src = randn({n}, seed++, 10.f).to(from);
        Tensor expect = src.to(to);  // host conversion: round to nearest even
        Tensor sd = src.to(Device::CUDA);
        Guarded g = guarded({n}, to);
        cuda::cast(sd, g.t);
        Tensor got = g.t.to(Device::CPU);
        EXPECT_EQ(std::memcmp(got.data(), expect.data(), expect.nbytes()), 0) << "not bit-exact";
        EXPECT_TRUE(guards_intact(g));
      }
    }
  }
}

// ---------------------------------------------------------------- allocator reuse

// A forward-like sequence of allocations, repeated after a warm-up, must be served from the cache.
TEST(CudaOps, AllocationsReuseCacheAfterWarmup) {
  TD_SKIP_WITHOUT_CUDA();
  auto step = [] {
    std::vector<Tensor> live;
    for (int layer = 0; layer < 4; layer++) {
      Tensor a = Tensor::empty({1000, 1536}, DType::BF16, Device::CUDA);
      Tensor b = Tensor::empty({1000, 3 * 1536}, DType::BF16, Device::CUDA);
      Tensor c = Tensor::empty({1000, 8960}, DType::BF16, Device::CUDA);
      live.push_back(Tensor::empty({1000, 1536}, DType::F32, Device::CUDA));
      (void)a, (void)b, (void)c;
    }
  };
  step();
  device_synchronize();
  const size_t peak = device_peak_bytes();
  step();
  step();
  EXPECT_EQ(device_peak_bytes(), peak) << "the second identical sequence grew the pool (cudaMalloc in steady state)";
}

}  // namespace
}  // namespace td
