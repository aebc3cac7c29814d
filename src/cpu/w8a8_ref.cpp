#include "cpu/w8a8_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

namespace {

constexpr int64_t B = ops::kW8A8Block;

void expect_host_f32_2d(const Tensor& t, const char* what) {
  TD_CHECK(t.defined(), what, "missing tensor");
  TD_CHECK(t.device() == Device::CPU, what, "expected a host tensor, got ", t.describe());
  TD_CHECK(t.dtype() == DType::F32, what, "expected f32 on the CPU backend, got ", t.describe());
  TD_CHECK(t.dim() == 2, what, "expected 2 dims [M, K], got ", t.describe());
  TD_CHECK(t.is_contiguous(), what, "expected a contiguous tensor, got ", t.describe());
}

// A [D] or [1, D] f32 host vector.
const float* vec_f32(const Tensor& t, int64_t D, const char* what) {
  TD_CHECK(t.defined() && t.device() == Device::CPU && t.dtype() == DType::F32 && t.is_contiguous(), what,
           "expected a contiguous host f32 vector, got ", t.defined() ? t.describe() : "none");
  TD_CHECK(t.numel() == D && (t.dim() == 1 || (t.dim() == 2 && t.size(0) == 1)), what, "expected [", D,
           "] elements, got ", t.describe());
  return t.ptr<float>();
}

void ensure(Tensor& t, const Shape& s, DType dt) {
  if (!t.defined() || t.shape() != s || t.dtype() != dt || t.device() != Device::CPU || !t.is_contiguous())
    t = Tensor::empty(s, dt, Device::CPU);
}

// Quantizes one row of D values in 1x128 groups (the fused-norm tail).
void quantize_row(const float* v, int64_t D, int8_t* q, float* s) {
  for (int64_t j = 0; j < D / B; j++) s[j] = quantize_block_int8(v + j * B, 1, B, B, q + j * B, B);
}

}  // namespace

float quantize_block_int8(const float* x, int64_t rows, int64_t cols, int64_t ld, int8_t* q, int64_t ldq) {
  float amax = 1e-8f;  // TurboDiffusion's floor: an all-zero block gets scale 1e-8/128 and quantizes to zeros
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) amax = std::max(amax, std::fabs(x[r * ld + c]));  // NaN is skipped, as fmaxf
  const float inv = 128.f / amax;  // divisor 128: +amax saturates to 127, -amax maps to -128
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) q[r * ldq + c] = quantize_one_int8(x[r * ld + c], inv);
  return amax / 128.f;
}

void quantize_blocks_int8(const float* x, int64_t M, int64_t K, int64_t block_rows, int8_t* q, float* scale) {
  const int64_t mb = (M + block_rows - 1) / block_rows, kb = (K + B - 1) / B;
  parallel_for(mb, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; i++) {
      const int64_t r0 = i * block_rows, rows = std::min(block_rows, M - r0);
      for (int64_t j = 0; j < kb; j++) {
        const int64_t c0 = j * B, cols = std::min(B, K - c0);
        scale[i * kb + j] = quantize_block_int8(x + r0 * K + c0, rows, cols, K, q + r0 * K + c0, K);
      }
    }
  }, std::max<int64_t>(1, 64 / block_rows));
}

static inline int32_t dot_s8(const int8_t* a, const int8_t* b, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; i++) s += int32_t(a[i]) * int32_t(b[i]);  // vectorises to pmaddwd with -mavx2
  return s;
}

void gemm_s8s8_s32(const int8_t* a, const int8_t* b, int32_t* c, int64_t M, int64_t N, int64_t K) {
  parallel_for(M, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++)
      for (int64_t n = 0; n < N; n++) c[m * N + n] = dot_s8(a + m * K, b + n * K, K);
  }, 4);
}

float gelu_tanh_ref(float v) {
  const float k0 = 0.7978845608028654f, k1 = 0.044715f;
  return 0.5f * v * (1.f + std::tanh(k0 * (v + k1 * v * v * v)));
}

void gemm_w8a8_f32(const int8_t* a, const float* a_scale, int64_t a_block_rows, const int8_t* w, const float* w_scale,
                   const float* bias, float* y, int64_t M, int64_t N, int64_t K, Epilogue ep) {
  TD_ASSERT(K % B == 0, "K=", K);
  const int64_t kb = K / B;
  parallel_for(M, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const float* sa = a_scale + (m / a_block_rows) * kb;
      for (int64_t n = 0; n < N; n++) {
        const float* sw = w_scale + (n / B) * kb;
        float acc = 0.f;
        for (int64_t j = 0; j < kb; j++) {
          const int32_t p = dot_s8(a + m * K + j * B, w + n * K + j * B, B);
          acc += float(p) * (sa[j] * sw[j]);  // |p| <= 2^21, exact in f32
        }
        if (bias) acc += bias[n];
        if (ep == Epilogue::GeluTanh) acc = gelu_tanh_ref(acc);
        y[m * N + n] = acc;
      }
    }
  }, 2);
}

void check_w8a8_weight(const Tensor& w_int8, const Tensor& w_scale, int64_t K) {
  TD_CHECK(w_int8.defined(), "w8a8 weight", "missing int8 weight");
  const std::string wn = w_int8.name().empty() ? "int8_weight" : w_int8.name();
  const std::string sn = w_scale.name().empty() ? "scale" : w_scale.name();
  TD_CHECK(w_int8.dtype() == DType::I8 && w_int8.dim() == 2 && w_int8.is_contiguous(), wn,
           "expected a contiguous i8 [N, K] weight, got ", w_int8.describe());
  const int64_t N = w_int8.size(0);
  TD_CHECK(w_int8.size(1) == K, wn, "weight has K=", w_int8.size(1), " but the activation has K=", K);
  TD_CHECK(K % B == 0 && N % B == 0, wn, "W8A8 needs K and N to be multiples of 128, got [N=", N, ", K=", K, "]");
  TD_CHECK(w_scale.defined(), sn, "missing weight scale");
  TD_CHECK(w_scale.dtype() == DType::F32 && w_scale.is_contiguous(), sn, "expected contiguous f32, got ",
           w_scale.describe());
  expect_shape(w_scale, {N / B, K / B}, sn);
  TD_CHECK(w_scale.device() == w_int8.device(), sn, "weight and scale on different devices");
}

void quantize_act_int8(const Tensor& x, ops::Int8Act& out) {
  expect_host_f32_2d(x, "w8a8 activation");
  const int64_t M = x.size(0), K = x.size(1);
  TD_CHECK(K % B == 0, "w8a8 activation", "K must be a multiple of 128, got ", x.describe());
  ensure(out.q, {M, K}, DType::I8);
  ensure(out.scale, {M, K / B}, DType::F32);
  quantize_blocks_int8(x.ptr<float>(), M, K, 1, out.q.ptr<int8_t>(), out.scale.ptr<float>());
}

static void check_act(const ops::Int8Act& x) {
  TD_CHECK(x.q.defined() && x.scale.defined(), "w8a8 activation", "not quantized");
  TD_CHECK(x.q.dtype() == DType::I8 && x.q.dim() == 2 && x.q.is_contiguous(), "w8a8 activation",
           "expected contiguous i8 [M, K], got ", x.q.describe());
  TD_CHECK(x.q.size(1) % B == 0, "w8a8 activation", "K must be a multiple of 128, got ", x.q.describe());
  TD_CHECK(x.scale.dtype() == DType::F32 && x.scale.is_contiguous(), "w8a8 activation scale",
           "expected contiguous f32, got ", x.scale.describe());
  expect_shape(x.scale, {x.q.size(0), x.q.size(1) / B}, "w8a8 activation scale");
}

void linear_w8a8(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep) {
  check_act(x);
  const int64_t M = x.q.size(0), K = x.q.size(1);
  check_w8a8_weight(w_int8, w_scale, K);
  const int64_t N = w_int8.size(0);
  const float* b = bias ? vec_f32(*bias, N, "w8a8 bias") : nullptr;
  expect_host_f32_2d(y, "w8a8 output");
  expect_shape(y, {M, N}, "w8a8 output");
  gemm_w8a8_f32(x.q.ptr<int8_t>(), x.scale.ptr<float>(), 1, w_int8.ptr<int8_t>(), w_scale.ptr<float>(), b,
                y.ptr<float>(), M, N, K, ep);
}

void linear_w8a8_residual(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid) {
  check_act(x);
  const int64_t M = x.q.size(0), K = x.q.size(1);
  check_w8a8_weight(w_int8, w_scale, K);
  const int64_t N = w_int8.size(0);
  const float* b = bias ? vec_f32(*bias, N, "w8a8 bias") : nullptr;
  const float* g = gate ? vec_f32(*gate, N, "w8a8 gate") : nullptr;
  expect_host_f32_2d(resid, "w8a8 residual");
  expect_shape(resid, {M, N}, "w8a8 residual");
  std::vector<float> y(size_t(M * N));
  gemm_w8a8_f32(x.q.ptr<int8_t>(), x.scale.ptr<float>(), 1, w_int8.ptr<int8_t>(), w_scale.ptr<float>(), b, y.data(),
                M, N, K, Epilogue::None);
  float* r = resid.ptr<float>();
  for (int64_t i = 0; i < M * N; i++) r[i] += g ? g[i % N] * y[size_t(i)] : y[size_t(i)];
}

// One LayerNorm row (statistics in double) then `* mul` (or `* (1 + mul)`) and `+ add`, each optional; the
// fp32 input of the fused norm -> int8 references.
static void layernorm_row(const float* xr, int64_t D, float eps, const float* mul, bool one_plus, const float* add,
                          float* out) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < D; i++) mean += xr[i];
  mean /= double(D);
  for (int64_t i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
  const float rstd = float(1.0 / std::sqrt(var / double(D) + eps));
  for (int64_t i = 0; i < D; i++) {
    float t = float(xr[i] - mean) * rstd;
    if (mul) t *= one_plus ? 1.f + mul[i] : mul[i];
    if (add) t += add[i];
    out[i] = t;
  }
}

void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, ops::Int8Act& out) {
  expect_host_f32_2d(x, "layernorm_modulate_quant x");
  const int64_t M = x.size(0), D = x.size(1);
  TD_CHECK(D % B == 0, "layernorm_modulate_quant x", "D must be a multiple of 128, got ", x.describe());
  const float* sh = vec_f32(shift, D, "modulation shift");
  const float* sc = vec_f32(scale, D, "modulation scale");
  ensure(out.q, {M, D}, DType::I8);
  ensure(out.scale, {M, D / B}, DType::F32);
  parallel_for(M, [&](int64_t m0, int64_t m1) {
    std::vector<float> v(static_cast<size_t>(D));
    for (int64_t m = m0; m < m1; m++) {
      layernorm_row(x.ptr<float>() + m * D, D, eps, sc, true, sh, v.data());
      quantize_row(v.data(), D, out.q.ptr<int8_t>() + m * D, out.scale.ptr<float>() + m * (D / B));
    }
  }, 4);
}

void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, ops::Int8Act& out) {
  expect_host_f32_2d(x, "layernorm_quant x");
  const int64_t M = x.size(0), D = x.size(1);
  TD_CHECK(D % B == 0, "layernorm_quant x", "D must be a multiple of 128, got ", x.describe());
  const float* w = weight ? vec_f32(*weight, D, "norm weight") : nullptr;
  const float* b = bias ? vec_f32(*bias, D, "norm bias") : nullptr;
  ensure(out.q, {M, D}, DType::I8);
  ensure(out.scale, {M, D / B}, DType::F32);
  parallel_for(M, [&](int64_t m0, int64_t m1) {
    std::vector<float> v(static_cast<size_t>(D));
    for (int64_t m = m0; m < m1; m++) {
      layernorm_row(x.ptr<float>() + m * D, D, eps, w, false, b, v.data());
      quantize_row(v.data(), D, out.q.ptr<int8_t>() + m * D, out.scale.ptr<float>() + m * (D / B));
    }
  }, 4);
}

void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta) {
  expect_host_f32_2d(x, "rmsnorm_rope3d x");
  const int64_t L = x.size(0), D = x.size(1);
  TD_CHECK(heads > 0 && D % heads == 0 && D / heads == 128, "rmsnorm_rope3d x", "expected [L, heads*128] with heads=",
           heads, ", got ", x.describe());
  TD_CHECK(int64_t(frames) * height * width == L, "rmsnorm_rope3d x", "L=", L, " but the grid is ", frames, "x",
           height, "x", width);
  const float* w = vec_f32(weight, D, "rmsnorm weight");
  // Wan's table: 22 frame pairs (axis dim 44), 21 row and 21 column pairs (axis dim 42); angles in float64.
  const int dh = 128, cf = 22, chw = 21;
  parallel_for(L, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; l++) {
      float* r = x.ptr<float>() + l * D;
      double ss = 0;
      for (int64_t i = 0; i < D; i++) ss += double(r[i]) * r[i];
      const float rs = float(1.0 / std::sqrt(ss / double(D) + eps));
      for (int64_t i = 0; i < D; i++) r[i] = (r[i] * rs) * w[i];
      const int64_t f = l / (int64_t(height) * width), hh = (l / width) % height, ww = l % width;
      for (int p = 0; p < dh / 2; p++) {
        double pos, dim;
        int i;
        if (p < cf) pos = double(f), dim = 2 * cf, i = p;
        else if (p < cf + chw) pos = double(hh), dim = 2 * chw, i = p - cf;
        else pos = double(ww), dim = 2 * chw, i = p - cf - chw;
        const double ang = pos * std::pow(double(theta), -2.0 * i / dim);
        const double c = std::cos(ang), s = std::sin(ang);
        for (int h = 0; h < heads; h++) {
          float* e = r + h * dh + 2 * p;
          const double a = e[0], b = e[1];
          e[0] = float(a * c - b * s);
          e[1] = float(a * s + b * c);
        }
      }
    }
  }, 8);
}

void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c) {
  TD_CHECK(a.dtype() == DType::I8 && a.dim() == 2 && a.is_contiguous() && a.device() == Device::CPU, "gemm a",
           "expected host contiguous i8 [M,K], got ", a.describe());
  TD_CHECK(b.dtype() == DType::I8 && b.dim() == 2 && b.is_contiguous() && b.device() == Device::CPU, "gemm b",
           "expected host contiguous i8 [N,K], got ", b.describe());
  TD_CHECK(a.size(1) == b.size(1), "gemm b", "K mismatch: ", a.describe(), " vs ", b.describe());
  TD_CHECK(c.dtype() == DType::I32 && c.is_contiguous() && c.device() == Device::CPU, "gemm c",
           "expected host contiguous i32, got ", c.describe());
  expect_shape(c, {a.size(0), b.size(0)}, "gemm c");
  gemm_s8s8_s32(a.ptr<int8_t>(), b.ptr<int8_t>(), c.ptr<int32_t>(), a.size(0), b.size(0), a.size(1));
}

}  // namespace cpu
}  // namespace td
