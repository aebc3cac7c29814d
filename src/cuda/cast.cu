// Device dtype conversion among f32, bf16 and f16 (round to nearest even, like PyTorch's .to()).
#include "cuda/cast.h"

#include "core/allocator.h"
#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

template <typename Ts, typename Td, bool kVec>
__global__ void cast_kernel(const Ts* __restrict__ s, Td* __restrict__ d, int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  if (kVec) {
    for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8; i < n; i += step * 8) {
      float v[8];
      load8(s + i, v);
      store8(d + i, v);
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) d[i] = from_f<Td>(to_f(s[i]));
  }
}

template <typename Ts, typename Td>
void launch_typed(const Tensor& src, Tensor& dst) {
  const Ts* s = src.ptr<Ts>();
  Td* d = dst.ptr<Td>();
  const int64_t n = src.numel();
  const bool vec = n % 8 == 0 && reinterpret_cast<uintptr_t>(s) % 16 == 0 && reinterpret_cast<uintptr_t>(d) % 16 == 0;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(vec ? n / 8 : n, threads), int64_t(sm_count()) * 16));
  if (vec)
    cast_kernel<Ts, Td, true><<<blocks, threads, 0, stream()>>>(s, d, n);
  else
    cast_kernel<Ts, Td, false><<<blocks, threads, 0, stream()>>>(s, d, n);
  TD_CUDA_LAUNCH_CHECK();
}

template <typename Ts>
void dispatch_dst(const Tensor& src, Tensor& dst) {
  switch (dst.dtype()) {
    case DType::F32: launch_typed<Ts, float>(src, dst); break;
    case DType::BF16: launch_typed<Ts, __nv_bfloat16>(src, dst); break;
    default: launch_typed<Ts, __half>(src, dst); break;
  }
}

}  // namespace

void cast(const Tensor& src, Tensor& dst) {
  expect_cuda(src, "cast input");
  expect_cuda(dst, "cast output");
  expect_dtype_in(src, "cast input", {DType::F32, DType::BF16, DType::F16});
  expect_dtype_in(dst, "cast output", {DType::F32, DType::BF16, DType::F16});
  TD_CHECK(src.shape() == dst.shape(), "cast output", dst.describe(), " does not match input ", src.describe());
  TD_CHECK(src.is_contiguous() && dst.is_contiguous(), "cast", "input and output must be contiguous");
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype()) {
    if (src.data() != dst.data()) device_memcpy(dst.data(), src.data(), src.nbytes(), 2);
    return;
  }
  switch (src.dtype()) {
    case DType::F32: dispatch_dst<float>(src, dst); break;
    case DType::BF16: dispatch_dst<__nv_bfloat16>(src, dst); break;
    default: dispatch_dst<__half>(src, dst); break;
  }
}

}  // namespace cuda
}  // namespace td
