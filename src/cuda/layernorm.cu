// LayerNorm (+ modulation or affine) on rows: one warp per row, fp32 statistics from two passes over the row (the
// second pass subtracts the mean first, so large-mean rows keep their precision; rows are re-read from L1/L2).
#include "cuda/layernorm.h"

#include <algorithm>

#include "cuda/op_util.cuh"
#include "cuda/residual.h"

namespace td {
namespace cuda {

namespace {

using namespace detail;

constexpr int kRowsPerBlock = 4;  // 4 warps: enough rows in flight per SM for a memory-bound kernel

struct LnParams {
  const void* mul = nullptr;  // scale (modulate: y *= 1 + mul) or weight (affine: y *= mul)
  const void* add = nullptr;  // shift or bias
  bool mul_bf16 = false, add_bf16 = false, one_plus = false;
  float eps = 1e-6f;
  // Fused residual (register kernel only): x += res * gate before the norm, the sum written to x_out (= x, f32).
  const void* res = nullptr;  // [M, D] contiguous, bf16 or f32
  bool res_bf16 = false;
  const float* gate = nullptr;  // [D] or null
  float* x_out = nullptr;
};

template <typename Tin, typename Tout, bool kVec>
__global__ void __launch_bounds__(kRowsPerBlock * 32) layernorm_kernel(const Tin* __restrict__ x, int64_t ldx,
                                                                     Tout* __restrict__ y, int64_t ldy, int64_t M,
                                                                     int D, LnParams p) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= M) return;
  const Tin* xr = x + row * ldx;
  Tout* yr = y + row * ldy;

  float s = 0.f;
  if (kVec) {
    for (int j = lane * 8; j < D; j += 256) {
      float v[8];
      load8(xr + j, v);
#pragma unroll
      for (int i = 0; i < 8; i++) s += v[i];
    }
  } else {
    for (int j = lane; j < D; j += 32) s += to_f(xr[j]);
  }
  const float mean = warp_sum(s) / float(D);

  float q = 0.f;
  if (kVec) {
    for (int j = lane * 8; j < D; j += 256) {
      float v[8];
      load8(xr + j, v);
#pragma unroll
      for (int i = 0; i < 8; i++) q += (v[i] - mean) * (v[i] - mean);
    }
  } else {
    for (int j = lane; j < D; j += 32) {
      float d = to_f(xr[j]) - mean;
      q += d * d;
    }
  }
  const float rstd = rsqrtf(warp_sum(q) / float(D) + p.eps);

  auto finish = [&](float v, int j) {
    float n = (v - mean) * rstd;
    if (p.mul) {
      float m = ld_param(p.mul, p.mul_bf16, j);
      n *= p.one_plus ? 1.f + m : m;
    }
    if (p.add) n += ld_param(p.add, p.add_bf16, j);
    return n;
  };
  if (kVec) {
    for (int j = lane * 8; j < D; j += 256) {
      float v[8];
      load8(xr + j, v);
#pragma unroll
      for (int i = 0; i < 8; i++) v[i] = finish(v[i], j + i);
      store8(yr + j, v);
    }
  } else {
    for (int j = lane; j < D; j += 32) yr[j] = from_f<Tout>(finish(to_f(xr[j]), j));
  }
}

// Rows of at most 8 * 256 channels (the 1.3B model's 1536): the row stays in registers between the three passes
// (8 values per lane per 256-channel step) and the warps walk rows grid-stride. The kernel above re-reads each row
// three times and launches a CTA per 4 rows: ~1.25 TB/s on the H100 at 32760 x 1536.
constexpr int kRegSteps = 8;
template <typename Tin, typename Tout>
__global__ void __launch_bounds__(kRowsPerBlock * 32) layernorm_reg_kernel(const Tin* __restrict__ x, int64_t ldx,
                                                                         Tout* __restrict__ y, int64_t ldy, int64_t M,
                                                                         int D, LnParams p) {
  const int lane = threadIdx.x % 32, steps = D / 256;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; row < M;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const Tin* xr = x + row * ldx;
    Tout* yr = y + row * ldy;
    float v[kRegSteps][8];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kRegSteps; k++)
      if (k < steps) {
        const int j0 = k * 256 + lane * 8;
        load8(xr + j0, v[k]);
        if (p.res) {
          // The residual add first; the whole row is read (by this warp) before any lane writes h, so res may
          // alias y.
          float r[8];
          if (p.res_bf16) load8(static_cast<const __nv_bfloat16*>(p.res) + row * D + j0, r);
          else load8(static_cast<const float*>(p.res) + row * D + j0, r);
#pragma unroll
          for (int i = 0; i < 8; i++) v[k][i] += (p.gate ? p.gate[j0 + i] : 1.f) * r[i];
          store8(p.x_out + row * ldx + j0, v[k]);
        }
#pragma unroll
        for (int i = 0; i < 8; i++) s += v[k][i];
      }
    const float mean = warp_sum(s) / float(D);
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < kRegSteps; k++)
      if (k < steps) {
#pragma unroll
        for (int i = 0; i < 8; i++) q += (v[k][i] - mean) * (v[k][i] - mean);
      }
    const float rstd = rsqrtf(warp_sum(q) / float(D) + p.eps);
#pragma unroll
    for (int k = 0; k < kRegSteps; k++)
      if (k < steps) {
        const int j0 = k * 256 + lane * 8;
#pragma unroll
        for (int i = 0; i < 8; i++) {
          float n = (v[k][i] - mean) * rstd;
          if (p.mul) {
            const float m = ld_param(p.mul, p.mul_bf16, j0 + i);
            n *= p.one_plus ? 1.f + m : m;
          }
          if (p.add) n += ld_param(p.add, p.add_bf16, j0 + i);
          v[k][i] = n;
        }
        store8(yr + j0, v[k]);
      }
  }
}

template <typename Tin, typename Tout>
void launch_typed(const Tensor& x, const Rows& rx, Tensor& y, const Rows& ry, const LnParams& p) {
  const Tin* xp = x.ptr<Tin>();
  Tout* yp = y.ptr<Tout>();
  const bool vec = rx.D % 8 == 0 && rows_aligned16(xp, rx.ld, sizeof(Tin)) && rows_aligned16(yp, ry.ld, sizeof(Tout));
  if (vec && rx.D % 256 == 0 && rx.D <= 256 * kRegSteps) {
    const int64_t blocks = std::min<int64_t>(ceil_div(rx.M, kRowsPerBlock), int64_t(sm_count()) * 16);
    layernorm_reg_kernel<Tin, Tout><<<unsigned(std::max<int64_t>(blocks, 1)), kRowsPerBlock * 32, 0, stream()>>>(
        xp, rx.ld, yp, ry.ld, rx.M, int(rx.D), p);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  dim3 grid(ceil_div(rx.M, kRowsPerBlock)), block(kRowsPerBlock * 32);
  if (vec)
    layernorm_kernel<Tin, Tout, true><<<grid, block, 0, stream()>>>(xp, rx.ld, yp, ry.ld, rx.M, int(rx.D), p);
  else
    layernorm_kernel<Tin, Tout, false><<<grid, block, 0, stream()>>>(xp, rx.ld, yp, ry.ld, rx.M, int(rx.D), p);
  TD_CUDA_LAUNCH_CHECK();
}

// The norm's parameters: mul (scale with one_plus, else weight) and add (shift / bias), each checked to hold D values.
LnParams ln_params(const Tensor* mul, const Tensor* add, bool one_plus, float eps, int64_t D, const char* mul_what,
                   const char* add_what) {
  LnParams p;
  p.eps = eps;
  p.one_plus = one_plus;
  if (mul) {
    expect_param(*mul, D, mul_what);
    p.mul = mul->data();
    p.mul_bf16 = mul->dtype() == DType::BF16;
  }
  if (add) {
    expect_param(*add, D, add_what);
    p.add = add->data();
    p.add_bf16 = add->dtype() == DType::BF16;
  }
  return p;
}

void run(const char* op, const Tensor& x, Tensor& y, LnParams p) {
  const std::string xs = cat(op, " input"), ys = cat(op, " output");
  expect_cuda(x, xs.c_str());
  expect_cuda(y, ys.c_str());
  expect_dtype_in(x, xs, {DType::F32, DType::BF16});
  expect_dtype_in(y, ys, {DType::F32, DType::BF16});
  TD_CHECK(x.shape() == y.shape(), ys, y.describe(), " does not match input ", x.describe());
  Rows rx = rows_of(x, xs), ry = rows_of(y, ys);
  TD_CHECK(rx.D > 0 && rx.D < (int64_t(1) << 30), xs, x.describe(), ": bad row length");
  if (rx.M == 0) return;
  const bool xb = x.dtype() == DType::BF16, yb = y.dtype() == DType::BF16;
  if (xb && yb) launch_typed<__nv_bfloat16, __nv_bfloat16>(x, rx, y, ry, p);
  if (xb && !yb) launch_typed<__nv_bfloat16, float>(x, rx, y, ry, p);
  if (!xb && yb) launch_typed<float, __nv_bfloat16>(x, rx, y, ry, p);
  if (!xb && !yb) launch_typed<float, float>(x, rx, y, ry, p);
}

}  // namespace

void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h) {
  expect_cuda(x, "residual_layernorm stream");
  expect_cuda(y, "residual_layernorm input");
  expect_cuda(h, "residual_layernorm output");
  TD_CHECK(x.dtype() == DType::F32 && x.is_contiguous() && y.shape() == x.shape() && h.shape() == x.shape() &&
               y.is_contiguous() && (y.dtype() == DType::BF16 || y.dtype() == DType::F32),
           "residual_layernorm", "expected an f32 stream and a bf16/f32 input of its shape, got ", x.describe(),
           " and ", y.describe());
  TD_CHECK(!modulate || (mul && add), "residual_layernorm", "modulation needs both scale and shift");
  const int64_t D = x.size(-1), M = D ? x.numel() / D : 0;
  if (gate) {
    expect_param(*gate, D, "residual_layernorm gate");
    TD_CHECK(gate->dtype() == DType::F32, "residual_layernorm gate", "expected f32, got ", gate->describe());
  }
  const bool fused = D % 256 == 0 && D <= 256 * kRegSteps && reinterpret_cast<uintptr_t>(x.data()) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(y.data()) % 16 == 0 && h.is_contiguous() &&
                     reinterpret_cast<uintptr_t>(h.data()) % 16 == 0;
  if (!fused) {
    if (gate) gated_residual(x, y, *gate);
    else add_residual(x, y);
    if (modulate) layernorm_modulate(x, *add, *mul, eps, h);
    else layernorm(x, mul, add, eps, h);
    return;
  }
  LnParams p =
      ln_params(mul, add, modulate, eps, D, "residual_layernorm scale/weight", "residual_layernorm shift/bias");
  p.res = y.data();
  p.res_bf16 = y.dtype() == DType::BF16;
  p.gate = gate ? gate->ptr<float>() : nullptr;
  p.x_out = x.ptr<float>();
  if (M == 0) return;
  const int64_t blocks = std::min<int64_t>(ceil_div(M, kRowsPerBlock), int64_t(sm_count()) * 16);
  const unsigned grid = unsigned(std::max<int64_t>(blocks, 1));
  if (h.dtype() == DType::BF16)
    layernorm_reg_kernel<float, __nv_bfloat16><<<grid, kRowsPerBlock * 32, 0, stream()>>>(
        x.ptr<float>(), D, h.ptr<__nv_bfloat16>(), D, M, int(D), p);
  else
    layernorm_reg_kernel<float, float><<<grid, kRowsPerBlock * 32, 0, stream()>>>(x.ptr<float>(), D, h.ptr<float>(),
                                                                                   D, M, int(D), p);
  TD_CUDA_LAUNCH_CHECK();
}

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) {
  const int64_t D = x.dim() ? x.size(-1) : 0;
  run("layernorm_modulate", x, y,
      ln_params(&scale, &shift, true, eps, D, "layernorm_modulate scale", "layernorm_modulate shift"));
}

void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) {
  const int64_t D = x.dim() ? x.size(-1) : 0;
  run("layernorm", x, y, ln_params(weight, bias, false, eps, D, "layernorm weight", "layernorm bias"));
}

}  // namespace cuda
}  // namespace td
