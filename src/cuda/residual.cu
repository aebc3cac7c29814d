// The residual stream updates: x (f32) += y * gate, x += y. Memory-bound; 8 elements per thread, 16-byte accesses.
#include "cuda/residual.h"

#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

// One thread per 8 elements of a row (vector path) or per element (scalar path); grid.y walks rows in chunks.
template <typename Ty, bool kVec>
__global__ void residual_kernel(float* __restrict__ x, int64_t ldx, const Ty* __restrict__ y, int64_t ldy,
                                const float* __restrict__ gate, int64_t M, int D) {
  const int64_t per_row = kVec ? D / 8 : D;
  const int64_t total = M * per_row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / per_row;
    const int c = int(i % per_row) * (kVec ? 8 : 1);
    float* xr = x + r * ldx + c;
    const Ty* yr = y + r * ldy + c;
    if (kVec) {
      float a[8], b[8];
      load8(xr, a);
      load8(yr, b);
      if (gate) {
        float g[8];
        load8(gate + c, g);
#pragma unroll
        for (int k = 0; k < 8; k++) a[k] += b[k] * g[k];
      } else {
#pragma unroll
        for (int k = 0; k < 8; k++) a[k] += b[k];
      }
      store8(xr, a);
    } else {
      float b = to_f(*yr);
      *xr += gate ? b * gate[c] : b;
    }
  }
}

template <typename Ty>
void launch_typed(Tensor& x, const Rows& rx, const Tensor& y, const Rows& ry, const float* gate) {
  float* xp = x.ptr<float>();
  const Ty* yp = y.ptr<Ty>();
  const bool vec = rx.D % 8 == 0 && rows_aligned16(xp, rx.ld, 4) && rows_aligned16(yp, ry.ld, sizeof(Ty)) &&
                   (!gate || reinterpret_cast<uintptr_t>(gate) % 16 == 0);
  const int64_t work = vec ? rx.M * (rx.D / 8) : rx.M * rx.D;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(work, threads), int64_t(sm_count()) * 16));
  if (vec)
    residual_kernel<Ty, true><<<blocks, threads, 0, stream()>>>(xp, rx.ld, yp, ry.ld, gate, rx.M, int(rx.D));
  else
    residual_kernel<Ty, false><<<blocks, threads, 0, stream()>>>(xp, rx.ld, yp, ry.ld, gate, rx.M, int(rx.D));
  TD_CUDA_LAUNCH_CHECK();
}

void run(const char* op, Tensor& x, const Tensor& y, const Tensor* gate) {
  const std::string xs = cat(op, " x"), ys = cat(op, " y");
  expect_cuda(x, xs.c_str());
  expect_cuda(y, ys.c_str());
  expect_dtype(x, DType::F32, xs);
  expect_dtype_in(y, ys, {DType::F32, DType::BF16});
  Rows rx = rows_of(x, xs), ry = rows_of(y, ys);
  TD_CHECK(rx.M == ry.M && rx.D == ry.D, ys, y.describe(), " does not match ", x.describe());
  TD_CHECK(rx.D < (int64_t(1) << 30), xs, "row too long");
  const float* g = nullptr;
  if (gate) {
    const std::string gs = cat(op, " gate");
    expect_cuda(*gate, gs.c_str());
    expect_dtype(*gate, DType::F32, gs);
    TD_CHECK(gate->numel() == rx.D && gate->is_contiguous(), gs, gate->describe(), " must have ", rx.D,
             " contiguous elements");
    g = gate->ptr<float>();
  }
  if (rx.M == 0 || rx.D == 0) return;
  if (y.dtype() == DType::BF16)
    launch_typed<__nv_bfloat16>(x, rx, y, ry, g);
  else
    launch_typed<float>(x, rx, y, ry, g);
}

}  // namespace

void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate) { run("gated_residual", x, y, &gate); }

void add_residual(Tensor& x, const Tensor& y) { run("add_residual", x, y, nullptr); }

}  // namespace cuda
}  // namespace td
