// RMSNorm over the whole row, in place: one warp per row, fp32 sum of squares (Wan's WanRMSNorm on q and k).
#include "cuda/rmsnorm.h"

#include "cuda/fused_norm_quant.h"
#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

constexpr int kRowsPerBlock = 4;

template <typename T, bool kVec>
__global__ void __launch_bounds__(kRowsPerBlock * 32)
    rmsnorm_kernel(T* __restrict__ x, int64_t ld, int64_t M, int D, const void* w, bool w_bf16, float eps) {
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= M) return;
  T* xr = x + row * ld;
  float q = 0.f;
  if (kVec) {
    for (int j = lane * 8; j < D; j += 256) {
      float v[8];
      load8(xr + j, v);
#pragma unroll
      for (int i = 0; i < 8; i++) q += v[i] * v[i];
    }
  } else {
    for (int j = lane; j < D; j += 32) {
      float v = to_f(xr[j]);
      q += v * v;
    }
  }
  const float r = rsqrtf(warp_sum(q) / float(D) + eps);
  if (kVec) {
    for (int j = lane * 8; j < D; j += 256) {
      float v[8];
      load8(xr + j, v);
#pragma unroll
      for (int i = 0; i < 8; i++) v[i] = v[i] * r * ld_param(w, w_bf16, j + i);
      store8(xr + j, v);
    }
  } else {
    for (int j = lane; j < D; j += 32) xr[j] = from_f<T>(to_f(xr[j]) * r * ld_param(w, w_bf16, j));
  }
}

template <typename T>
void launch_typed(Tensor& x, const Rows& rx, const Tensor& weight, float eps) {
  T* xp = x.ptr<T>();
  const bool vec = rx.D % 8 == 0 && rows_aligned16(xp, rx.ld, sizeof(T));
  const bool wb = weight.dtype() == DType::BF16;
  dim3 grid(ceil_div(rx.M, kRowsPerBlock)), block(kRowsPerBlock * 32);
  if (vec)
    rmsnorm_kernel<T, true><<<grid, block, 0, stream()>>>(xp, rx.ld, rx.M, int(rx.D), weight.data(), wb, eps);
  else
    rmsnorm_kernel<T, false><<<grid, block, 0, stream()>>>(xp, rx.ld, rx.M, int(rx.D), weight.data(), wb, eps);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rmsnorm(Tensor& x, const Tensor& weight, float eps) {
  expect_cuda(x, "rmsnorm input");
  expect_dtype_in(x, "rmsnorm input", {DType::F32, DType::BF16});
  Rows rx = rows_of(x, "rmsnorm input");
  TD_CHECK(rx.D > 0 && rx.D < (int64_t(1) << 30), "rmsnorm input", x.describe(), ": bad row length");
  expect_param(weight, rx.D, "rmsnorm weight");
  if (rx.M == 0) return;
  if (rmsnorm_rows_in_registers(x, weight, eps)) return;
  if (x.dtype() == DType::BF16)
    launch_typed<__nv_bfloat16>(x, rx, weight, eps);
  else
    launch_typed<float>(x, rx, weight, eps);
}

}  // namespace cuda
}  // namespace td
