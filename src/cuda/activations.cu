// In-place SiLU and tanh-GELU (PyTorch's approximate='tanh' formula), computed in fp32.
#include "cuda/activations.h"

#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

struct Silu {
  __device__ float operator()(float v) const { return v / (1.f + __expf(-v)); }
};
struct GeluTanh {
  __device__ float operator()(float v) const {
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;  // sqrt(2/pi)
    return 0.5f * v * (1.f + tanhf(k0 * (v + k1 * v * v * v)));
  }
};

template <typename T, typename F, bool kVec>
__global__ void unary_kernel(T* __restrict__ x, int64_t n, F f) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  if (kVec) {
    for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8; i < n; i += step * 8) {
      float v[8];
      load8(x + i, v);
#pragma unroll
      for (int k = 0; k < 8; k++) v[k] = f(v[k]);
      store8(x + i, v);
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) x[i] = from_f<T>(f(to_f(x[i])));
  }
}

template <typename T, typename F>
void launch_typed(Tensor& x, F f) {
  T* p = x.ptr<T>();
  const int64_t n = x.numel();
  const bool vec = n % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  const int threads = 256;
  const int64_t work = vec ? n / 8 : n;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(work, threads), int64_t(sm_count()) * 16));
  if (vec)
    unary_kernel<T, F, true><<<blocks, threads, 0, stream()>>>(p, n, f);
  else
    unary_kernel<T, F, false><<<blocks, threads, 0, stream()>>>(p, n, f);
  TD_CUDA_LAUNCH_CHECK();
}

template <typename F>
void run(const char* op, Tensor& x, F f) {
  expect_cuda(x, op);
  expect_dtype_in(x, op, {DType::F32, DType::BF16});
  TD_CHECK(x.is_contiguous(), op, x.describe(), " must be contiguous");
  if (x.numel() == 0) return;
  if (x.dtype() == DType::BF16)
    launch_typed<__nv_bfloat16>(x, f);
  else
    launch_typed<float>(x, f);
}

}  // namespace

void silu(Tensor& x) { run("silu input", x, Silu{}); }
void gelu_tanh(Tensor& x) { run("gelu_tanh input", x, GeluTanh{}); }

}  // namespace cuda
}  // namespace td
