// CUDA kernels for the VAE's non-conv ops (bf16 activations, fp32 math). The attention core runs its two GEMMs on
// cuBLAS (bf16 inputs, fp32 accumulation; fp32 scores) with a row softmax between them.
#include "cuda/vae_ops.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "core/threads.h"
#include "cuda/cuda_common.cuh"

namespace td {
namespace cuda {
namespace {

unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count()) * 32;
  return unsigned(std::max<int64_t>(1, std::min(b, cap)));
}

cublasHandle_t blas() {
  static cublasHandle_t h = [] {
    cublasHandle_t hh;
    TD_CUBLAS_CHECK(cublasCreate(&hh));
    TD_CUBLAS_CHECK(cublasSetStream(hh, stream()));
    return hh;
  }();
  return h;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One warp per row of C channels: u = x + pre_bias, y = u / max(||u||, 1e-12) * sqrt(C) * gamma, optional SiLU.
__global__ void rms_norm_kernel(const __nv_bfloat16* __restrict__ x, const float* __restrict__ gamma,
                                const float* __restrict__ bias, __nv_bfloat16* y, int64_t rows, int C, bool silu) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    const __nv_bfloat16* xr = x + r * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) {
      const float v = __bfloat162float(xr[c]) + (bias ? bias[c] : 0.f);
      ss += v * v;
    }
    ss = warp_sum(ss);
    const float inv = sqrtf(float(C)) / fmaxf(sqrtf(ss), 1e-12f);
    __nv_bfloat16* yr = y + r * C;  // may alias x: each lane reads its channels before writing them
    for (int c = lane; c < C; c += 32) {
      float v = (__bfloat162float(xr[c]) + (bias ? bias[c] : 0.f)) * inv * gamma[c];
      if (silu) v = v / (1.f + __expf(-v));
      yr[c] = __float2bfloat16(v);
    }
  }
}

// The common case (C even, C <= 512): bf16x2 loads, the row kept in registers between the two passes.
template <int kPairs>
__global__ void rms_norm_vec_kernel(const __nv_bfloat162* x, const float* __restrict__ gamma,
                                    const float* __restrict__ bias, __nv_bfloat162* y, int64_t rows, int C2,
                                    bool silu) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const float scale = sqrtf(float(2 * C2));
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    float2 v[kPairs];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < kPairs; k++) {
      const int c2 = lane + 32 * k;
      if (c2 < C2) {
        v[k] = __bfloat1622float2(x[r * C2 + c2]);
        if (bias) {
          v[k].x += bias[2 * c2];
          v[k].y += bias[2 * c2 + 1];
        }
        ss += v[k].x * v[k].x + v[k].y * v[k].y;
      }
    }
    ss = warp_sum(ss);
    const float inv = scale / fmaxf(sqrtf(ss), 1e-12f);
#pragma unroll
    for (int k = 0; k < kPairs; k++) {
      const int c2 = lane + 32 * k;
      if (c2 < C2) {
        float a = v[k].x * inv * gamma[2 * c2], b = v[k].y * inv * gamma[2 * c2 + 1];
        if (silu) {
          a = a / (1.f + __expf(-a));
          b = b / (1.f + __expf(-b));
        }
        y[r * C2 + c2] = __floats2bfloat162_rn(a, b);
      }
    }
  }
}

// Rows of C = 8 * V * G channels (96, 192, 384 with V = 3): a group of G lanes per row, 16-byte loads, V vectors per
// lane. The one-warp-per-row kernels above keep only ~200 bytes per warp in flight at C = 96, about half of what HBM
// needs to stream; here a warp holds 32 * 16 * V bytes (several rows) at once. Every lane of a warp runs the same
// number of iterations (rows past the end load zeros and store nothing) so the group shuffles stay converged.
template <int V>
__global__ void __launch_bounds__(256, 4)
    rms_norm_wide_kernel(const uint4* x, const float* __restrict__ gamma, const float* __restrict__ bias, uint4* y,
                         int64_t rows, int G, bool silu, int64_t y_row) {
  // gamma and bias are re-read from L1 per row rather than held in registers: 48 held floats cost 117 registers
  // (2 blocks per SM, too few bytes in flight); re-reading keeps it under 64 and 4+ blocks resident.
  const int lane = threadIdx.x & 31, gl = lane % G;
  const int rpw = 32 / G;  // rows per warp step
  const int C = 8 * V * G;
  const float scale = sqrtf(float(C));
  const float4* g4 = reinterpret_cast<const float4*>(gamma);
  const float4* b4 = reinterpret_cast<const float4*>(bias);
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t nwarps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t rb = warp * rpw; rb < rows; rb += nwarps * rpw) {
    const int64_t r = rb + lane / G;
    const bool ok = r < rows;
    float v[V][8];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < V; j++) {
      uint4 u = make_uint4(0, 0, 0, 0);
      if (ok) u = x[r * (V * G) + j * G + gl];
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
      float bb[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      if (bias) {
        const float4 p = __ldg(b4 + 2 * (j * G + gl)), q = __ldg(b4 + 2 * (j * G + gl) + 1);
        bb[0] = p.x, bb[1] = p.y, bb[2] = p.z, bb[3] = p.w, bb[4] = q.x, bb[5] = q.y, bb[6] = q.z, bb[7] = q.w;
      }
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float2 f = __bfloat1622float2(h[e]);
        v[j][2 * e] = f.x + bb[2 * e];
        v[j][2 * e + 1] = f.y + bb[2 * e + 1];
        ss += v[j][2 * e] * v[j][2 * e] + v[j][2 * e + 1] * v[j][2 * e + 1];
      }
    }
    for (int o = G / 2; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = scale / fmaxf(sqrtf(ss), 1e-12f);
    if (!ok) continue;
#pragma unroll
    for (int j = 0; j < V; j++) {
      const float4 p = __ldg(g4 + 2 * (j * G + gl)), q = __ldg(g4 + 2 * (j * G + gl) + 1);
      const float gm[8] = {p.x, p.y, p.z, p.w, q.x, q.y, q.z, q.w};
      uint4 u;
      __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float a = v[j][2 * e] * inv * gm[2 * e], b = v[j][2 * e + 1] * inv * gm[2 * e + 1];
        if (silu) {
          a = a / (1.f + __expf(-a));
          b = b / (1.f + __expf(-b));
        }
        h[e] = __floats2bfloat162_rn(a, b);
      }
      y[r * y_row + j * G + gl] = u;  // may alias x (y_row == V * G): this lane read these 16 bytes above
    }
  }
}

// One block per score row: p = softmax(s) in fp32, written as bf16 for the PV GEMM.
__global__ void softmax_rows_kernel(const float* __restrict__ s, __nv_bfloat16* __restrict__ p, int L) {
  __shared__ float red[32];
  const float* sr = s + int64_t(blockIdx.x) * L;
  __nv_bfloat16* pr = p + int64_t(blockIdx.x) * L;
  const int lane = threadIdx.x & 31, wid = threadIdx.x / 32, nw = blockDim.x / 32;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, sr[j]);
  m = warp_max(m);
  if (lane == 0) red[wid] = m;
  __syncthreads();
  m = lane < nw ? red[lane] : -INFINITY;
  m = warp_max(m);
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < L; j += blockDim.x) sum += __expf(sr[j] - m);
  sum = warp_sum(sum);
  if (lane == 0) red[wid] = sum;
  __syncthreads();
  sum = lane < nw ? red[lane] : 0.f;
  sum = warp_sum(sum);
  const float inv = 1.f / sum;
  for (int j = threadIdx.x; j < L; j += blockDim.x) pr[j] = __float2bfloat16(__expf(sr[j] - m) * inv);
}

// Copies `units` of U (16 or 2 bytes) per pixel; the index maps below cover both layout moves.
template <typename U>
__global__ void upsample2x_kernel(const U* __restrict__ x, U* __restrict__ y, int T, int H, int W, int units) {
  const int64_t total = int64_t(T) * 2 * H * 2 * W * units;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int u = int(i % units);
    int64_t r = i / units;
    const int wo = int(r % (2 * W));
    r /= 2 * W;
    const int ho = int(r % (2 * H));
    const int t = int(r / (2 * H));
    y[i] = x[((int64_t(t) * H + ho / 2) * W + wo / 2) * units + u];
  }
}

template <typename U>
__global__ void interleave_kernel(const U* __restrict__ x, U* __restrict__ y, int T, int64_t HW, int units) {
  // y [2T, HW, units] from x [T, HW, 2*units]
  const int64_t total = int64_t(2) * T * HW * units;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int u = int(i % units);
    int64_t r = i / units;
    const int64_t p = r % HW;
    const int64_t f = r / HW;
    const int64_t t = f / 2, half = f % 2;
    y[i] = x[(t * HW + p) * 2 * units + half * units + u];
  }
}

template <typename U>
__global__ void phase_shuffle_kernel(const U* __restrict__ x, U* __restrict__ y, int T, int H, int W, int units) {
  // y [T, 2H, 2W, units] from x [T, H+1, W+1, 4*units] (see cpu/vae_resample.h)
  const int64_t total = int64_t(T) * 2 * H * 2 * W * units;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int u = int(i % units);
    int64_t r = i / units;
    const int xx = int(r % (2 * W));
    r /= 2 * W;
    const int yy = int(r % (2 * H));
    const int t = int(r / (2 * H));
    const int a = yy & 1, b = xx & 1;
    y[i] = x[((int64_t(t) * (H + 1) + yy / 2 + a) * (W + 1) + xx / 2 + b) * 4 * units + (2 * a + b) * units + u];
  }
}

__global__ void to_planar_kernel(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int64_t P, int C,
                                 int Cx, int64_t y_stride_c) {
  // y[c * y_stride_c + p] = clamp(x[p, c]) for the first C of x's Cx channels; P = n*H*W pixels. Consecutive threads
  // walk p so the f32 writes coalesce.
  const int64_t total = P * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / P, p = i % P;
    y[c * y_stride_c + p] = fminf(1.f, fmaxf(-1.f, __bfloat162float(x[p * Cx + c])));
  }
}

// y [P, Cy] from x [C, P], channels C..Cy-1 zero (the encoder's padded input channels).
__global__ void from_planar_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t P, int C,
                                   int Cy) {
  const int64_t total = P * Cy;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i / Cy, c = i % Cy;
    y[i] = __float2bfloat16(c < C ? x[c * P + p] : 0.f);
  }
}

}  // namespace

void vae_to_planar_clamped(const Tensor& x, Tensor& y, int64_t f0) {
  expect_cuda(x, "vae_to_planar input");
  expect_cuda(y, "vae_to_planar output");
  expect_dtype(x, DType::BF16, "vae_to_planar input");
  expect_dtype(y, DType::F32, "vae_to_planar output");
  const int64_t Cx = x.size(-1), C = y.size(0), P = x.numel() / Cx, HW = x.size(1) * x.size(2);
  TD_CHECK(x.dim() == 4 && y.dim() == 4 && C <= Cx && y.size(2) == x.size(1) && y.size(3) == x.size(2) &&
               f0 >= 0 && f0 + x.size(0) <= y.size(1) && y.is_contiguous() && x.is_contiguous(),
           "vae_to_planar", "x ", shape_str(x.shape()), " does not fit y ", shape_str(y.shape()), " at frame ", f0);
  to_planar_kernel<<<grid_for(P * C, 256), 256, 0, stream()>>>(x.ptr<__nv_bfloat16>(), y.ptr<float>() + f0 * HW, P,
                                                                int(C), int(Cx), y.size(1) * HW);
  TD_CUDA_LAUNCH_CHECK();
}

void vae_from_planar(const Tensor& x, Tensor& y) {
  expect_cuda(x, "vae_from_planar input");
  expect_cuda(y, "vae_from_planar output");
  expect_dtype(x, DType::F32, "vae_from_planar input");
  expect_dtype(y, DType::BF16, "vae_from_planar output");
  const int64_t C = x.size(0), P = x.numel() / C, Cy = y.size(-1);
  TD_CHECK(Cy >= C, "vae_from_planar", "output has ", Cy, " channels, fewer than the input's ", C);
  expect_shape(y, {x.size(1), x.size(2), x.size(3), Cy}, "vae_from_planar output");
  from_planar_kernel<<<grid_for(y.numel(), 256), 256, 0, stream()>>>(x.ptr<float>(), y.ptr<__nv_bfloat16>(), P,
                                                                     int(C), int(Cy));
  TD_CUDA_LAUNCH_CHECK();
}

// The checks the two VAE norm entry points share: bf16 input and output on the GPU, gamma (and the optional
// pre-bias) f32 on the GPU with one value per channel of x.
static void check_norm_args(const Tensor& x, const Tensor& out, const Tensor& gamma, const Tensor* bias,
                            const std::string& op) {
  expect_cuda(x, (op + " input").c_str());
  expect_cuda(out, (op + " output").c_str());
  expect_cuda(gamma, (op + " gamma").c_str());
  expect_dtype(x, DType::BF16, op + " input");
  expect_dtype(out, DType::BF16, op + " output");
  expect_dtype(gamma, DType::F32, op + " gamma");
  const int64_t C = x.dim() ? x.size(-1) : 0;
  TD_CHECK(gamma.numel() == C, op + " gamma", "has ", gamma.numel(), " values for ", C, " channels");
  if (bias) {
    expect_cuda(*bias, (op + " bias").c_str());
    expect_dtype(*bias, DType::F32, op + " bias");
    TD_CHECK(bias->numel() == C, op + " bias", "has ", bias->numel(), " values for ", C, " channels");
  }
}

bool vae_ring_norm_ok(int64_t C) {
  const int64_t G = C % 24 == 0 ? C / 24 : 0;
  return G > 0 && G <= 32 && (G & (G - 1)) == 0;
}

void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* bias, bool silu, Tensor& y) {
  check_norm_args(x, y, gamma, bias, "vae_rms_norm");
  const int64_t C = x.size(-1), rows = x.numel() / C;
  TD_CHECK(y.numel() == x.numel() && x.is_contiguous() && y.is_contiguous(), "vae_rms_norm",
           "shape mismatch: x ", shape_str(x.shape()), " y ", shape_str(y.shape()));
  const int threads = 256;
  // TD_VAE_NORM=warp keeps the one-warp-per-row kernels (to compare; the wide kernel is the default where it fits).
  static const bool wide_ok = [] {
    const char* e = std::getenv("TD_VAE_NORM");
    return !(e && std::string(e) == "warp");
  }();
  const int64_t G = C / 24;  // V = 3 vectors of 8 channels per lane (the ring kernel's layout)
  if (wide_ok && vae_ring_norm_ok(C) && reinterpret_cast<uintptr_t>(x.data()) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(y.data()) % 16 == 0 && reinterpret_cast<uintptr_t>(gamma.data()) % 16 == 0 &&
      (!bias || reinterpret_cast<uintptr_t>(bias->data()) % 16 == 0)) {
    const int64_t groups = rows;  // one group of G lanes per row
    rms_norm_wide_kernel<3><<<grid_for(groups * G, threads), threads, 0, stream()>>>(
        static_cast<const uint4*>(x.data()), gamma.ptr<float>(), bias ? bias->ptr<float>() : nullptr,
        static_cast<uint4*>(y.data()), rows, int(G), silu, 3 * G);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  if (C % 2 == 0 && C <= 512) {
    const int C2 = int(C / 2);
    auto launch = [&](auto kern) {
      kern<<<grid_for(rows * 32, threads), threads, 0, stream()>>>(
          static_cast<const __nv_bfloat162*>(x.data()), gamma.ptr<float>(), bias ? bias->ptr<float>() : nullptr,
          static_cast<__nv_bfloat162*>(y.data()), rows, C2, silu);
    };
    if (C2 <= 64) launch(rms_norm_vec_kernel<2>);
    else if (C2 <= 128) launch(rms_norm_vec_kernel<4>);
    else launch(rms_norm_vec_kernel<8>);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  rms_norm_kernel<<<grid_for(rows * 32, threads), threads, 0, stream()>>>(
      x.ptr<__nv_bfloat16>(), gamma.ptr<float>(), bias ? bias->ptr<float>() : nullptr, y.ptr<__nv_bfloat16>(), rows,
      int(C), silu);
  TD_CUDA_LAUNCH_CHECK();
}

void vae_rms_norm_ring(const Tensor& x, const Tensor& gamma, const Tensor* bias, bool silu, Tensor& ring, int slot) {
  check_norm_args(x, ring, gamma, bias, "vae_rms_norm_ring");
  const int64_t C = x.size(-1), rows = x.numel() / C;
  TD_CHECK(vae_ring_norm_ok(C) && x.is_contiguous() && ring.is_contiguous() &&
               ring.size(-1) == 3 * C && ring.numel() == 3 * x.numel() && slot >= 0 && slot < 3,
           "vae_rms_norm_ring", "x ", shape_str(x.shape()), " does not fit ring ", shape_str(ring.shape()), " slot ",
           slot);
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  TD_CHECK(aligned(x.data()) && aligned(ring.data()) && aligned(gamma.data()) && (!bias || aligned(bias->data())),
           "vae_rms_norm_ring", "tensors must be 16-byte aligned");
  const int64_t G = C / 24;
  rms_norm_wide_kernel<3><<<grid_for(rows * G, 256), 256, 0, stream()>>>(
      static_cast<const uint4*>(x.data()), gamma.ptr<float>(), bias ? bias->ptr<float>() : nullptr,
      reinterpret_cast<uint4*>(ring.ptr<__nv_bfloat16>() + slot * C), rows, int(G), silu, 9 * G);
  TD_CUDA_LAUNCH_CHECK();
}

void vae_attention(const Tensor& qkv, Tensor& o) {
  expect_cuda(qkv, "vae_attention qkv");
  expect_cuda(o, "vae_attention output");
  expect_dtype(qkv, DType::BF16, "vae_attention qkv");
  expect_dtype(o, DType::BF16, "vae_attention output");
  TD_CHECK(qkv.dim() == 2 && qkv.size(1) % 3 == 0 && qkv.is_contiguous(), "vae_attention",
           "qkv must be contiguous [L, 3C], got ", shape_str(qkv.shape()));
  const int64_t L = qkv.size(0), C = qkv.size(1) / 3;
  expect_shape(o, {L, C}, "vae_attention output");
  const __nv_bfloat16* q = qkv.ptr<__nv_bfloat16>();
  const __nv_bfloat16* k = q + C;
  const __nv_bfloat16* v = q + 2 * C;
  // Query blocks bound the fp32 score scratch to ~128 MiB whatever the frame size.
  const int64_t bq = std::max<int64_t>(1, std::min<int64_t>(L, (int64_t(32) << 20) / L));
  Tensor s = Tensor::empty({bq, L}, DType::F32, Device::CUDA);
  Tensor p = Tensor::empty({bq, L}, DType::BF16, Device::CUDA);
  const float scale = 1.f / sqrtf(float(C)), one = 1.f, zero = 0.f;
  const int ld = int(3 * C);
  for (int64_t q0 = 0; q0 < L; q0 += bq) {
    const int n = int(std::min(bq, L - q0));
    // Row-major S[n, L] = Q K^T is column-major S^T = K^T^T(op T on K^T) x Q^T.
    TD_CUBLAS_CHECK(cublasGemmEx(blas(), CUBLAS_OP_T, CUBLAS_OP_N, int(L), n, int(C), &scale, k, CUDA_R_16BF, ld,
                                 q + q0 * ld, CUDA_R_16BF, ld, &zero, s.data(), CUDA_R_32F, int(L),
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    softmax_rows_kernel<<<n, 256, 0, stream()>>>(s.ptr<float>(), p.ptr<__nv_bfloat16>(), int(L));
    TD_CUDA_LAUNCH_CHECK();
    // Row-major O[n, C] = P V is column-major O^T = V^T x P^T.
    TD_CUBLAS_CHECK(cublasGemmEx(blas(), CUBLAS_OP_N, CUBLAS_OP_N, int(C), n, int(L), &one, v, CUDA_R_16BF, ld,
                                 p.data(), CUDA_R_16BF, int(L), &zero, o.ptr<__nv_bfloat16>() + q0 * C, CUDA_R_16BF,
                                 int(C), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void vae_upsample_nearest2x(const Tensor& x, Tensor& y) {
  expect_cuda(x, "vae_upsample input");
  expect_cuda(y, "vae_upsample output");
  const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  expect_shape(y, {T, 2 * H, 2 * W, C}, "vae_upsample output");
  TD_CHECK(x.dtype() == y.dtype() && dtype_size(x.dtype()) == 2, "vae_upsample", "bf16/f16 tensors expected");
  const int64_t bytes = C * 2;
  if (bytes % 16 == 0) {
    const int units = int(bytes / 16);
    upsample2x_kernel<uint4><<<grid_for(y.nbytes() / 16, 256), 256, 0, stream()>>>(
        static_cast<const uint4*>(x.data()), static_cast<uint4*>(y.data()), int(T), int(H), int(W), units);
  } else {
    upsample2x_kernel<uint16_t><<<grid_for(y.numel(), 256), 256, 0, stream()>>>(
        static_cast<const uint16_t*>(x.data()), static_cast<uint16_t*>(y.data()), int(T), int(H), int(W), int(C));
  }
  TD_CUDA_LAUNCH_CHECK();
}

void vae_time_interleave(const Tensor& x, Tensor& y) {
  expect_cuda(x, "vae_time_interleave input");
  expect_cuda(y, "vae_time_interleave output");
  const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3) / 2;
  expect_shape(y, {2 * T, H, W, C}, "vae_time_interleave output");
  TD_CHECK(x.dtype() == y.dtype() && dtype_size(x.dtype()) == 2, "vae_time_interleave", "bf16/f16 tensors expected");
  if ((C * 2) % 16 == 0) {
    interleave_kernel<uint4><<<grid_for(y.nbytes() / 16, 256), 256, 0, stream()>>>(
        static_cast<const uint4*>(x.data()), static_cast<uint4*>(y.data()), int(T), H * W, int(C * 2 / 16));
  } else {
    interleave_kernel<uint16_t><<<grid_for(y.numel(), 256), 256, 0, stream()>>>(
        static_cast<const uint16_t*>(x.data()), static_cast<uint16_t*>(y.data()), int(T), H * W, int(C));
  }
  TD_CUDA_LAUNCH_CHECK();
}

void vae_phase_shuffle(const Tensor& x, Tensor& y) {
  expect_cuda(x, "vae_phase_shuffle input");
  expect_cuda(y, "vae_phase_shuffle output");
  const int64_t T = x.size(0), H = x.size(1) - 1, W = x.size(2) - 1, C = x.size(3) / 4;
  expect_shape(y, {T, 2 * H, 2 * W, C}, "vae_phase_shuffle output");
  TD_CHECK(x.dtype() == y.dtype() && dtype_size(x.dtype()) == 2 && x.size(3) == 4 * C, "vae_phase_shuffle",
           "bf16/f16 [T, H+1, W+1, 4C] expected, got ", shape_str(x.shape()));
  if ((C * 2) % 16 == 0) {
    phase_shuffle_kernel<uint4><<<grid_for(y.nbytes() / 16, 256), 256, 0, stream()>>>(
        static_cast<const uint4*>(x.data()), static_cast<uint4*>(y.data()), int(T), int(H), int(W), int(C * 2 / 16));
  } else {
    phase_shuffle_kernel<uint16_t><<<grid_for(y.numel(), 256), 256, 0, stream()>>>(
        static_cast<const uint16_t*>(x.data()), static_cast<uint16_t*>(y.data()), int(T), int(H), int(W), int(C));
  }
  TD_CUDA_LAUNCH_CHECK();
}

struct PlanarDownloader::Impl {
  float* out;
  int64_t C, F, HW, max_frames;
  std::function<void(int64_t, int64_t)> on_done;
  float* pinned[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  // The device-to-host copies run on their own stream (after `ready`), so the PCIe time of each chunk overlaps the
  // next chunk's kernels instead of stalling the engine stream. TD_VAE_COPY_STREAM=0 keeps them on the engine stream
  // (and the host scatter single-threaded): the previous behaviour, to compare.
  cudaStream_t copy = nullptr;
  cudaEvent_t ready[2] = {nullptr, nullptr};
  int64_t f0[2] = {-1, -1}, n[2] = {0, 0};
  Tensor planar[2];  // device staging [C, max_frames, HW] f32
  int next = 0;

  void drain(int s) {
    if (f0[s] < 0) return;
    TD_CUDA_CHECK(cudaEventSynchronize(done[s]));
    // Split over the CPU pool: the output is usually fresh memory, so this is mostly first-touch page faults
    // (~9 ms per 4-frame 480x832 chunk on one thread; the last two chunks' scatter is on the critical path).
    const int64_t per = n[s] * HW, piece = int64_t(1) << 18;  // floats per channel; 1 MiB pieces
    const int64_t ppc = (per + piece - 1) / piece;
    float* dst = out;
    const float* src = pinned[s];
    const int64_t F_ = F, HW_ = HW, f0_ = f0[s];
    auto body = [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) {
        const int64_t c = i / ppc, off = (i % ppc) * piece, len = std::min(piece, per - off);
        std::memcpy(dst + (c * F_ + f0_) * HW_ + off, src + c * per + off, size_t(len) * sizeof(float));
      }
    };
    if (copy) parallel_for(C * ppc, body);
    else body(0, C * ppc);  // TD_VAE_COPY_STREAM=0: the old single-threaded path, for comparison
    f0[s] = -1;
    if (on_done) on_done(f0_, n[s]);
  }
};

PlanarDownloader::PlanarDownloader(float* host_out, int64_t C, int64_t F, int64_t HW, int64_t max_frames,
                                   std::function<void(int64_t, int64_t)> on_done)
    : impl_(new Impl{host_out, C, F, HW, max_frames, std::move(on_done)}) {
  try {
    for (int s = 0; s < 2; s++) {
      TD_CUDA_CHECK(cudaMallocHost(&impl_->pinned[s], size_t(C * max_frames * HW) * sizeof(float)));
      TD_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done[s], cudaEventDisableTiming));
      TD_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->ready[s], cudaEventDisableTiming));
      impl_->planar[s] = Tensor::empty({C, max_frames * HW}, DType::F32, Device::CUDA);
    }
    static const bool use_copy_stream = [] {
      const char* e = std::getenv("TD_VAE_COPY_STREAM");
      return !(e && std::string(e) == "0");
    }();
    if (use_copy_stream) TD_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->copy, cudaStreamNonBlocking));
  } catch (...) {
    this->~PlanarDownloader();
    throw;
  }
}

PlanarDownloader::~PlanarDownloader() {
  if (!impl_) return;
  for (int s = 0; s < 2; s++) {
    if (impl_->done[s]) {
      cudaEventSynchronize(impl_->done[s]);  // never free a buffer a copy is still writing
      cudaEventDestroy(impl_->done[s]);
    }
    if (impl_->ready[s]) cudaEventDestroy(impl_->ready[s]);
    if (impl_->pinned[s]) cudaFreeHost(impl_->pinned[s]);
  }
  if (impl_->copy) cudaStreamDestroy(impl_->copy);
  delete impl_;
  impl_ = nullptr;
}

void PlanarDownloader::push(const Tensor& x, int64_t f0) {
  Impl& I = *impl_;
  const int64_t n = x.size(0);
  TD_CHECK(x.dim() == 4 && x.size(3) >= I.C && x.size(1) * x.size(2) == I.HW && n <= I.max_frames && f0 >= 0 &&
               f0 + n <= I.F,
           "vae download", "chunk ", shape_str(x.shape()), " at frame ", f0, " does not fit the output");
  const int s = I.next;
  I.next ^= 1;
  I.drain(s);
  // The slot's device staging is free: its previous download finished (drain waited on it).
  Tensor y = I.planar[s].view({I.C * I.max_frames * I.HW}).slice(0, 0, I.C * n * I.HW).view({I.C, n, x.size(1),
                                                                                              x.size(2)});
  vae_to_planar_clamped(x, y, 0);
  cudaStream_t cs = stream();
  if (I.copy) {
    TD_CUDA_CHECK(cudaEventRecord(I.ready[s], stream()));
    TD_CUDA_CHECK(cudaStreamWaitEvent(I.copy, I.ready[s], 0));
    cs = I.copy;
  }
  TD_CUDA_CHECK(cudaMemcpyAsync(I.pinned[s], y.data(), size_t(I.C * n * I.HW) * sizeof(float),
                                cudaMemcpyDeviceToHost, cs));
  TD_CUDA_CHECK(cudaEventRecord(I.done[s], cs));
  I.f0[s] = f0;
  I.n[s] = n;
}

void PlanarDownloader::finish() {
  impl_->drain(impl_->next);
  impl_->drain(impl_->next ^ 1);
}

void vae_zero(Tensor& x) {
  expect_cuda(x, "vae_zero");
  TD_ASSERT(x.is_contiguous());
  TD_CUDA_CHECK(cudaMemsetAsync(x.data(), 0, x.nbytes(), stream()));
}

}  // namespace cuda
}  // namespace td
