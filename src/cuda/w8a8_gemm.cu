// W8A8 GEMM, mma.sync path (sm_80+), and the activation quantizer.
//
// C[M,N] = sum_kb (A_kb[M,128] · W_kb[N,128]^T as int32) * sa[m,kb] * sw[n/128,kb], then bias / GELU / gated residual.
// A K tile is exactly one quantization block, so each main-loop iteration ends with one int32 -> fp32 fold of the
// accumulators (the integer partial of one block is at most 128*128*128 = 2^21 in magnitude: exact in fp32).
// Tiles: w8a8_gemm_config.h.
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/w8a8_ref.h"
#include "cuda/act_int8.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/w8a8_gemm.h"
#include "cuda/w8a8_gemm.cuh"
#include "cuda/w8a8_gemm_config.h"

namespace td {
namespace cuda {

using namespace w8a8cfg;
using namespace w8a8;

namespace {

template <OutMode kMode>
__global__ void __launch_bounds__(kThreads, 1) w8a8_gemm_mma_kernel(const GemmArgs p) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;

  int m0, n0;
  tile_coords(p, kBM, kBN, &m0, &n0);
  const int KB = p.K / kBK;

  const uint32_t smem_base = smem_u32(smem);

  int32_t acc[4][4][4];
  float accf[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0, accf[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < KB) load_stage(smem_base + s * kStageBytes, smem_base + s * kStageBytes + kBM * kBK, p, m0, n0, s * kBK, tid);
    cp_async_commit();
  }

  const int g = lane >> 2, t = lane & 3;
  for (int kb = 0; kb < KB; kb++) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kb landed for everyone; stage kb-1 is free for the next load
    {
      const int nk = kb + kStages - 1;
      if (nk < KB) {
        const int st = nk % kStages;
        load_stage(smem_base + st * kStageBytes, smem_base + st * kStageBytes + kBM * kBK, p, m0, n0, nk * kBK, tid);
      }
      cp_async_commit();
    }

    // This block's scales, fetched before the MMAs so their latency hides behind them.
    float srow[4][2];
    if (kMode != OutMode::RawI32) {
      const float sw = __ldg(p.sw + size_t(n0 / kBN) * KB + kb);
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int m = m0 + wm * kWM + mi * 16 + g + h * 8;
          srow[mi][h] = m < p.M ? __ldg(p.sa + size_t(m) * KB + kb) * sw : 0.f;
        }
    }

    const int st = kb % kStages;
    const uint32_t sA = smem_base + st * kStageBytes, sB = sA + kBM * kBK;
#pragma unroll
    for (int kk = 0; kk < kBK / 32; kk++) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; mi++) {
        const int r = wm * kWM + mi * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
        ldmatrix_x4(sA + swz(r, c), af[mi][0], af[mi][1], af[mi][2], af[mi][3]);
      }
#pragma unroll
      for (int nj = 0; nj < 2; nj++) {
        const int r = wn * kWN + nj * 16 + (lane & 7) + ((lane >> 4) << 3), c = kk * 2 + ((lane >> 3) & 1);
        ldmatrix_x4(sB + swz(r, c), bf[2 * nj][0], bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1]);
      }
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) mma_s8(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }

    if (kMode != OutMode::RawI32) {
#pragma unroll
      for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            accf[mi][ni][e] = fmaf(float(acc[mi][ni][e]), srow[mi][e >> 1], accf[mi][ni][e]);
            acc[mi][ni][e] = 0;
          }
    }
  }
  cp_async_wait<0>();  // nothing real is pending (only empty groups), but leave no copy in flight at exit

  // Epilogue straight from the fragments: each thread owns pairs of adjacent columns (c0,c1) and (c2,c3).
#pragma unroll
  for (int ni = 0; ni < 4; ni++) {
    const int n = n0 + wn * kWN + ni * 8 + 2 * t;
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int m = m0 + wm * kWM + mi * 16 + g + h * 8;
        if (m < p.M)
          store_pair<kMode>(p, m, n, accf[mi][ni][2 * h], accf[mi][ni][2 * h + 1], acc[mi][ni][2 * h],
                            acc[mi][ni][2 * h + 1]);
      }
  }
}

template <OutMode kMode>
void launch_mma(const GemmArgs& p) {
  static bool configured = false;  // per instantiation; the attribute is per device function
  if (!configured) {
    TD_CUDA_CHECK(cudaFuncSetAttribute(w8a8_gemm_mma_kernel<kMode>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kSmemBytes));
    configured = true;
  }
  const int64_t tiles = int64_t((p.M + kBM - 1) / kBM) * (p.N / kBN);
  TD_CHECK(tiles < (int64_t(1) << 31), "w8a8 gemm", "problem too large: M=", p.M, " N=", p.N);
  w8a8_gemm_mma_kernel<kMode><<<unsigned(tiles), kThreads, kSmemBytes, stream()>>>(p);
  TD_CUDA_LAUNCH_CHECK();
}

W8A8Kernel kernel_choice_now();

void launch_gemm(OutMode mode, const GemmArgs& p) {
  if (p.M == 0) return;
  const W8A8Kernel k = kernel_choice_now();
  if (k != W8A8Kernel::Mma) {
    launch_w8a8_wgmma(int(mode), p, k);
    return;
  }
  switch (mode) {
    case OutMode::RawI32: launch_mma<OutMode::RawI32>(p); break;
    case OutMode::BF16: launch_mma<OutMode::BF16>(p); break;
    case OutMode::F32: launch_mma<OutMode::F32>(p); break;
    case OutMode::Residual: launch_mma<OutMode::Residual>(p); break;
    case OutMode::Int8: TD_ASSERT(false, "the mma.sync path has no int8 epilogue"); break;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantization, 1x128 groups: one warp per group, 4 elements per lane.

template <typename T>
__device__ __forceinline__ float4 load4(const T* p);
template <>
__device__ __forceinline__ float4 load4<float>(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
template <>
__device__ __forceinline__ float4 load4<__nv_bfloat16>(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&u.x), hi = *reinterpret_cast<const __nv_bfloat162*>(&u.y);
  return make_float4(__low2float(lo), __high2float(lo), __low2float(hi), __high2float(hi));
}

template <typename T>
__global__ void quantize_act_kernel(const T* __restrict__ x, int8_t* __restrict__ q, float* __restrict__ s,
                                    int64_t groups) {
  const int64_t gi = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (gi >= groups) return;  // whole warps exit together
  const float4 v = load4<T>(x + gi * 128 + lane * 4);
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
  amax = fmaxf(amax, 1e-8f);
#pragma unroll
  for (int o = 16; o; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  reinterpret_cast<uint32_t*>(q + gi * 128)[lane] = act_int8_pack4(v.x, v.y, v.z, v.w, act_int8_inv(amax));
  if (lane == 0) s[gi] = act_int8_scale(amax);
}

// ---------------------------------------------------------------------------------------------------------------
// argument checks

void ensure_dev(Tensor& t, const Shape& s, DType dt) {
  if (!t.defined() || t.shape() != s || t.dtype() != dt || !t.is_cuda() || !t.is_contiguous())
    t = Tensor::empty(s, dt, Device::CUDA);
}

void check_act(const ops::Int8Act& x) {
  TD_CHECK(x.q.defined() && x.scale.defined(), "w8a8 activation", "not quantized");
  expect_cuda(x.q, "w8a8 activation");
  expect_cuda(x.scale, "w8a8 activation scale");
  TD_CHECK(x.q.dtype() == DType::I8 && x.q.dim() == 2 && x.q.is_contiguous(), "w8a8 activation",
           "expected contiguous i8 [M, K], got ", x.q.describe());
  TD_CHECK(x.q.size(1) % 128 == 0, "w8a8 activation", "K must be a multiple of 128, got ", x.q.describe());
  TD_CHECK(x.scale.dtype() == DType::F32 && x.scale.is_contiguous(), "w8a8 activation scale",
           "expected contiguous f32, got ", x.scale.describe());
  expect_shape(x.scale, {x.q.size(0), x.q.size(1) / 128}, "w8a8 activation scale");
  TD_CHECK(x.q.size(0) < (int64_t(1) << 31), "w8a8 activation", "too many rows: ", x.q.describe());
}

const float* dev_vec_f32(const Tensor* t, int64_t N, const char* what) {
  if (!t) return nullptr;
  expect_cuda(*t, what);
  TD_CHECK(t->dtype() == DType::F32 && t->is_contiguous() && t->numel() == N, what, "expected contiguous f32 [", N,
           "], got ", t->describe());
  return t->ptr<float>();
}

// cp.async moves 16-byte chunks and the epilogue stores pairs: views with odd offsets are refused, not misread.
void check_align(const void* ptr, size_t bytes, const char* what) {
  TD_CHECK(reinterpret_cast<uintptr_t>(ptr) % bytes == 0, what, "device pointer not ", bytes,
           "-byte aligned (a view at an odd offset?)");
}

GemmArgs make_args(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias) {
  check_act(x);
  expect_cuda(w_int8, "w8a8 int8_weight");
  expect_cuda(w_scale, "w8a8 scale");
  cpu::check_w8a8_weight(w_int8, w_scale, x.q.size(1));
  GemmArgs p{};
  p.a = x.q.ptr<int8_t>();
  p.w = w_int8.ptr<int8_t>();
  p.sa = x.scale.ptr<float>();
  p.sw = w_scale.ptr<float>();
  p.M = int(x.q.size(0));
  p.N = int(w_int8.size(0));
  p.K = int(x.q.size(1));
  if (bias) {
    expect_cuda(*bias, "w8a8 bias");
    TD_CHECK((bias->dtype() == DType::BF16 || bias->dtype() == DType::F32) && bias->is_contiguous() &&
                 bias->numel() == p.N,
             "w8a8 bias", "expected contiguous bf16/f32 [", p.N, "], got ", bias->describe());
    p.bias = bias->data();
    p.bias_bf16 = bias->dtype() == DType::BF16;
    check_align(p.bias, 8, "w8a8 bias");
  }
  check_align(p.a, 16, "w8a8 activation");
  check_align(p.w, 16, "w8a8 int8_weight");
  return p;
}

}  // namespace

void quantize_act_int8(const Tensor& x, ops::Int8Act& out) {
  expect_cuda(x, "w8a8 activation");
  TD_CHECK((x.dtype() == DType::BF16 || x.dtype() == DType::F32) && x.dim() == 2 && x.is_contiguous(),
           "w8a8 activation", "expected contiguous bf16/f32 [M, K], got ", x.describe());
  const int64_t M = x.size(0), K = x.size(1);
  TD_CHECK(K % 128 == 0, "w8a8 activation", "K must be a multiple of 128, got ", x.describe());
  ensure_dev(out.q, {M, K}, DType::I8);
  ensure_dev(out.scale, {M, K / 128}, DType::F32);
  const int64_t groups = M * (K / 128);
  if (groups == 0) return;
  check_align(x.data(), 16, "w8a8 activation");
  const int threads = 256;
  const int64_t blocks = (groups * 32 + threads - 1) / threads;
  TD_CHECK(blocks < (int64_t(1) << 31), "w8a8 activation", "too large: ", x.describe());
  if (x.dtype() == DType::BF16)
    quantize_act_kernel<__nv_bfloat16><<<unsigned(blocks), threads, 0, stream()>>>(
        x.ptr<__nv_bfloat16>(), out.q.ptr<int8_t>(), out.scale.ptr<float>(), groups);
  else
    quantize_act_kernel<float><<<unsigned(blocks), threads, 0, stream()>>>(x.ptr<float>(), out.q.ptr<int8_t>(),
                                                                           out.scale.ptr<float>(), groups);
  TD_CUDA_LAUNCH_CHECK();
}

void linear_w8a8(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep) {
  GemmArgs p = make_args(x, w_int8, w_scale, bias);
  expect_cuda(y, "w8a8 output");
  TD_CHECK((y.dtype() == DType::BF16 || y.dtype() == DType::F32) && y.is_contiguous(), "w8a8 output",
           "expected contiguous bf16/f32, got ", y.describe());
  expect_shape(y, {int64_t(p.M), int64_t(p.N)}, "w8a8 output");
  p.out = y.data();
  check_align(p.out, 8, "w8a8 output");
  p.gelu = ep == Epilogue::GeluTanh;
  launch_gemm(y.dtype() == DType::BF16 ? OutMode::BF16 : OutMode::F32, p);
}

void linear_w8a8_residual(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid) {
  GemmArgs p = make_args(x, w_int8, w_scale, bias);
  expect_cuda(resid, "w8a8 residual");
  TD_CHECK(resid.dtype() == DType::F32 && resid.is_contiguous(), "w8a8 residual",
           "expected the contiguous f32 residual stream, got ", resid.describe());
  expect_shape(resid, {int64_t(p.M), int64_t(p.N)}, "w8a8 residual");
  p.gate = dev_vec_f32(gate, p.N, "w8a8 gate");
  if (p.gate) check_align(p.gate, 8, "w8a8 gate");
  p.out = resid.data();
  check_align(p.out, 8, "w8a8 residual");
  launch_gemm(OutMode::Residual, p);
}

void linear_w8a8_quant(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                       ops::Int8Act& out, Epilogue ep) {
  GemmArgs p = make_args(x, w_int8, w_scale, bias);
  TD_CHECK(!out.q.defined() || out.q.data() != x.q.data(), "w8a8 output", "must not alias the input activation");
  ensure_dev(out.q, {int64_t(p.M), int64_t(p.N)}, DType::I8);
  ensure_dev(out.scale, {int64_t(p.M), int64_t(p.N / 128)}, DType::F32);
  if (p.M == 0) return;
  if (kernel_choice_now() == W8A8Kernel::Mma) {  // mma.sync path: bf16 temporary, then the quantizer
    Tensor y = Tensor::empty({int64_t(p.M), int64_t(p.N)}, DType::BF16, Device::CUDA);
    ::td::cuda::linear_w8a8(x, w_int8, w_scale, bias, y, ep);  // qualified: no ADL into td::ops
    ::td::cuda::quantize_act_int8(y, out);
    return;
  }
  p.out = out.q.data();
  p.qscale = out.scale.ptr<float>();
  p.gelu = ep == Epilogue::GeluTanh;
  check_align(p.out, 16, "w8a8 output");
  launch_gemm(OutMode::Int8, p);
}

void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c) {
  expect_cuda(a, "gemm a");
  expect_cuda(b, "gemm b");
  expect_cuda(c, "gemm c");
  TD_CHECK(a.dtype() == DType::I8 && a.dim() == 2 && a.is_contiguous(), "gemm a", "expected contiguous i8, got ",
           a.describe());
  TD_CHECK(b.dtype() == DType::I8 && b.dim() == 2 && b.is_contiguous(), "gemm b", "expected contiguous i8, got ",
           b.describe());
  TD_CHECK(a.size(1) == b.size(1), "gemm b", "K mismatch: ", a.describe(), " vs ", b.describe());
  TD_CHECK(a.size(1) % 128 == 0 && b.size(0) % 128 == 0, "gemm b", "K and N must be multiples of 128, got ",
           a.describe(), " x ", b.describe());
  TD_CHECK(c.dtype() == DType::I32 && c.is_contiguous(), "gemm c", "expected contiguous i32, got ", c.describe());
  expect_shape(c, {a.size(0), b.size(0)}, "gemm c");
  GemmArgs p{};
  p.a = a.ptr<int8_t>();
  p.w = b.ptr<int8_t>();
  p.M = int(a.size(0));
  p.N = int(b.size(0));
  p.K = int(a.size(1));
  p.out = c.data();
  check_align(p.a, 16, "gemm a");
  check_align(p.w, 16, "gemm b");
  check_align(p.out, 8, "gemm c");
  launch_gemm(OutMode::RawI32, p);
}

static std::string& kernel_choice() {
  static std::string k = [] {
    const char* e = std::getenv("TD_W8A8_KERNEL");
    return std::string(e ? e : "auto");
  }();
  return k;
}

const std::vector<const char*>& w8a8_kernel_names() {
  static const std::vector<const char*> names{"mma",     "ws",  "wsmc", "ws256",   "ws256mc",
                                              "ws3",     "ws2", "ws2mc", "by-shape"};
  return names;
}

namespace {
W8A8Kernel kernel_of(const std::string& k) {
  const auto& names = w8a8_kernel_names();
  for (size_t i = 0; i < names.size(); i++) {
    if (k != names[i]) continue;
    TD_CHECK(i == 0 || w8a8_wgmma_available(), "TD_W8A8_KERNEL", k, " needs an sm_90 GPU and a build with sm_90a");
    return W8A8Kernel(i);
  }
  std::string accepted = "auto";
  for (const char* n : names) accepted += std::string("|") + n;
  TD_CHECK(k == "auto", "TD_W8A8_KERNEL", "expected ", accepted, ", got '", k, "'");
  return w8a8_wgmma_available() ? kernel_of(kAutoSm90Kernel) : W8A8Kernel::Mma;
}
W8A8Kernel kernel_choice_now() { return kernel_of(kernel_choice()); }
}  // namespace

void set_w8a8_kernel(const char* name) {
  const std::string n = name ? name : "auto";
  kernel_of(n);  // validates the name and availability
  kernel_choice() = n;
}

const char* w8a8_kernel_name() { return w8a8_kernel_names()[size_t(kernel_choice_now())]; }

bool w8a8_kernel_runs(const char* name) {
  const std::string n = name ? name : "";
  return n == "mma" || (w8a8_wgmma_available() && n != "auto");
}

}  // namespace cuda
}  // namespace td
