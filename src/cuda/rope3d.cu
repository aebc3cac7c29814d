// Wan's 3-D RoPE in place on [L, H, Dh]. One block per token: the token's Dh/2 angles are computed once in float64
// (pos * theta^(-2i/n) and sincos, as the official code builds its complex128 table), kept as fp32 cos/sin in shared
// memory, then every head's pairs are rotated in fp32. The angle error is ~1e-16 relative; the bf16 store dominates.
#include "cuda/rope3d.h"

#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kMaxPairs = 256;  // head_dim up to 512

template <typename T>
__global__ void __launch_bounds__(kThreads)
    rope3d_kernel(T* __restrict__ x, int64_t ld_tok, int64_t ld_head, int H, int C, int c_f, int c_hw, int height,
                  int width, double theta) {
  __shared__ float cs[kMaxPairs], sn[kMaxPairs];
  const int64_t t = blockIdx.x;
  const int64_t hw = int64_t(height) * width;
  const int f = int(t / hw), hh = int((t % hw) / width), ww = int(t % width);
  for (int p = threadIdx.x; p < C; p += kThreads) {
    int i = p, n = 2 * c_f, pos = f;
    if (p >= c_f) {
      i = (p - c_f) % c_hw;
      n = 2 * c_hw;
      pos = p < c_f + c_hw ? hh : ww;
    }
    const double a = double(pos) * pow(theta, -double(2 * i) / double(n));
    double s, c;
    sincos(a, &s, &c);
    cs[p] = float(c);
    sn[p] = float(s);
  }
  __syncthreads();
  T* xt = x + t * ld_tok;
  for (int j = threadIdx.x; j < H * C; j += kThreads) {
    const int h = j / C, p = j % C;
    T* v = xt + h * ld_head + 2 * p;
    const float re = to_f(v[0]), im = to_f(v[1]);
    v[0] = from_f<T>(re * cs[p] - im * sn[p]);
    v[1] = from_f<T>(re * sn[p] + im * cs[p]);
  }
}

}  // namespace

void rope3d(Tensor& x, int frames, int height, int width, float theta) {
  expect_cuda(x, "rope3d input");
  expect_dtype_in(x, "rope3d input", {DType::F32, DType::BF16});
  TD_CHECK(x.dim() == 3, "rope3d input", x.describe(), " must be [L, heads, head_dim]");
  const int64_t L = x.size(0), H = x.size(1), Dh = x.size(2);
  TD_CHECK(Dh % 2 == 0 && Dh >= 6 && Dh / 2 <= kMaxPairs, "rope3d input", "head_dim ", Dh,
           " must be even, >= 6 and <= ", 2 * kMaxPairs);
  TD_CHECK(x.strides()[2] == 1, "rope3d input", x.describe(), ": head_dim must be contiguous");
  TD_CHECK(frames > 0 && height > 0 && width > 0 && int64_t(frames) * height * width == L, "rope3d input",
           x.describe(), " has ", L, " tokens but the grid is ", frames, "x", height, "x", width);
  TD_CHECK(H * Dh < (int64_t(1) << 30), "rope3d input", "too many heads");
  if (L == 0) return;
  const int C = int(Dh / 2), c_hw = C / 3, c_f = C - 2 * c_hw;
  TD_CHECK(c_hw > 0, "rope3d input", "head_dim too small");
  const int64_t ld_tok = x.strides()[0], ld_head = x.strides()[1];
  if (x.dtype() == DType::BF16)
    rope3d_kernel<__nv_bfloat16><<<unsigned(L), kThreads, 0, stream()>>>(
        x.ptr<__nv_bfloat16>(), ld_tok, ld_head, int(H), C, c_f, c_hw, height, width, double(theta));
  else
    rope3d_kernel<float><<<unsigned(L), kThreads, 0, stream()>>>(x.ptr<float>(), ld_tok, ld_head, int(H), C, c_f,
                                                                 c_hw, height, width, double(theta));
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace td
