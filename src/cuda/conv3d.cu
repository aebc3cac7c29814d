// VAE conv3d on CUDA through cuDNN's convolution API: bf16 NDHWC activations and KTRSC filters (our channels-last
// layout, no transposes), fp32 compute on tensor cores. Algorithms are chosen once per shape with FindEx (timed, not
// heuristic) and cached. A direct fp32-accumulating kernel backs cuDNN up where it reports a configuration as
// unsupported, and can be forced with TD_VAE_CONV=naive to cross-check cuDNN.
#include "cuda/conv3d.h"

#include <cudnn.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "core/allocator.h"
#include "core/log.h"
#include "cuda/conv3d_config.h"
#include "cuda/conv2d_wgmma.h"
#include "cuda/cuda_common.cuh"
#include "cuda/linear.h"

#define TD_CUDNN_CHECK(expr)                                                                             \
  do {                                                                                                   \
    cudnnStatus_t st_ = (expr);                                                                          \
    if (st_ != CUDNN_STATUS_SUCCESS)                                                                     \
      throw ::td::Error(::td::cat("cuDNN ", __FILE__, ":", __LINE__),                                  \
                        ::td::cat(#expr, " failed: ", cudnnGetErrorString(st_)));                        \
  } while (0)

namespace td {
namespace cuda {
namespace {

const char* conv_mode_name();

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t hh;
    TD_CUDNN_CHECK(cudnnCreate(&hh));
    TD_CUDNN_CHECK(cudnnSetStream(hh, stream()));
    log_info("vae conv3d: cuDNN ", cudnnGetVersion(), " (", conv_mode_name(), " convs)");
    return hh;
  }();
  return h;
}

// TD_VAE_CONV: unset/"auto" = per problem by channel count (conv3d_config::kTaps2dMaxChannels: measured on the H100,
// cuDNN 9.14's 3-D kernels win at 192/384 channels and lose badly at 96, where 2-D kernels run ~1.7x faster);
// "3d" = cuDNN 3-D convs; "2d" = each time tap as a cuDNN 2-D NHWC conv over the frames as the batch, accumulated
// with beta = 1; "naive" = the direct kernel (debugging).
enum class ConvMode { Auto, Cudnn3d, Cudnn2dTaps, Naive };
ConvMode conv_mode();
const char* conv_mode_name() {
  switch (conv_mode()) {
    case ConvMode::Auto: return "auto: 2-D per time tap up to 128 channels, else 3-D";
    case ConvMode::Cudnn3d: return "3-D";
    case ConvMode::Cudnn2dTaps: return "2-D per time tap";
    default: return "direct (naive)";
  }
}
ConvMode conv_mode() {
  static ConvMode m = [] {
    const char* e = std::getenv("TD_VAE_CONV");
    const std::string v = e ? e : "";
    if (v == "naive") return ConvMode::Naive;
    if (v == "2d") return ConvMode::Cudnn2dTaps;
    if (v == "3d") return ConvMode::Cudnn3d;
    TD_CHECK(v.empty() || v == "auto", "TD_VAE_CONV", "expected auto, 3d, 2d or naive, got '", v, "'");
    return ConvMode::Auto;
  }();
  return m;
}

// y[To,Ho,Wo,O] (+)= conv(x) + bias over the time taps [dt0, dt1), one thread per output element, fp32 accumulation.
__global__ void conv3d_naive_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                    const float* __restrict__ bias, __nv_bfloat16* __restrict__ y, int Hi, int Wi,
                                    int C, int O, int kt, int kh, int kw, int To, int Ho, int Wo, int st, int sh,
                                    int sw, int pt, int pl, bool accumulate, int dt0, int dt1) {
  const int64_t total = int64_t(To) * Ho * Wo * O;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int o = int(i % O);
    int64_t r = i / O;
    const int wo = int(r % Wo);
    r /= Wo;
    const int ho = int(r % Ho);
    const int t = int(r / Ho);
    float acc = bias ? bias[o] : 0.f;
    for (int dt = dt0; dt < dt1; dt++) {
      const int ti = t * st + dt;
      for (int dh = 0; dh < kh; dh++) {
        const int hi = ho * sh - pt + dh;
        if (hi < 0 || hi >= Hi) continue;
        for (int dw = 0; dw < kw; dw++) {
          const int wi = wo * sw - pl + dw;
          if (wi < 0 || wi >= Wi) continue;
          const __nv_bfloat16* xp = x + ((int64_t(ti) * Hi + hi) * Wi + wi) * C;
          const __nv_bfloat16* wp = w + ((((int64_t(o) * kt + dt) * kh + dh) * kw + dw) * C);
          for (int c = 0; c < C; c++) acc += __bfloat162float(xp[c]) * __bfloat162float(wp[c]);
        }
      }
    }
    if (accumulate) acc += __bfloat162float(y[i]);
    y[i] = __float2bfloat16(acc);
  }
}

// y[p, o] += bias[o], bf16x2 at a time (O even); the channel index advances by the grid stride, no 64-bit modulo.
__global__ void add_bias2_kernel(__nv_bfloat162* __restrict__ y, const float* __restrict__ bias, int64_t n2, int O2) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n2) return;
  int c = int(i % O2);
  const int step = int(stride % O2);
  for (; i < n2; i += stride) {
    float2 v = __bfloat1622float2(y[i]);
    v.x += bias[2 * c];
    v.y += bias[2 * c + 1];
    y[i] = __floats2bfloat162_rn(v.x, v.y);
    c += step;
    if (c >= O2) c -= O2;
  }
}

__global__ void add_bias_kernel(__nv_bfloat16* __restrict__ y, const float* __restrict__ bias, int64_t rows, int O) {
  const int64_t total = rows * O;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + bias[i % O]);
}

// Zero-pads spatially (asymmetric pads, which cuDNN cannot express): x [T,H,W,C] -> y [T,H+pt+pb,W+pl+pr,C].
__global__ void pad_kernel(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y, int T, int H, int W,
                           int C, int Hp, int Wp, int pt, int pl) {
  const int64_t total = int64_t(T) * Hp * Wp * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % C);
    int64_t r = i / C;
    const int wp = int(r % Wp);
    r /= Wp;
    const int hp = int(r % Hp);
    const int t = int(r / Hp);
    const int h = hp - pt, w = wp - pl;
    y[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((int64_t(t) * H + h) * W + w) * C + c] : __float2bfloat16(0.f);
  }
}

// The narrow ring conv (see conv3d_config::kHead*): y[H, W, 8] (+)= conv3x3(ring[H, W, 3C]) + bias, one CTA per
// kHeadRows x kHeadCols output pixels, warp i on output row i (two m16 pixel tiles x n8 outputs, k16 steps). The
// weights [8][9][3C] and the halo of one ring slot at a time sit in shared memory with rows padded by 16 bytes, which
// makes the ldmatrix rows (pixels) and the B-fragment loads (outputs) hit distinct banks.
template <int C>
__global__ void __launch_bounds__(conv3d_config::kHeadThreads, 2)
    head_conv_kernel(const __nv_bfloat16* __restrict__ ring, const __nv_bfloat16* __restrict__ w,
                     const float* __restrict__ bias, __nv_bfloat16* __restrict__ y, int H, int W, bool accumulate) {
  using namespace conv3d_config;
  constexpr int CP = 3 * C, HP = kHeadRows + 2, WP = kHeadCols + 2;
  constexpr int WROW = CP * 2 + 16, PIX = C * 2 + 16;  // bytes
  constexpr int kWBytes = kHeadOutputs * 9 * WROW;
  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t sw = static_cast<uint32_t>(__cvta_generic_to_shared(smem)), sh = sw + kWBytes;
  const int tid = threadIdx.x, lane = tid & 31, wi = tid >> 5;
  const int h0 = blockIdx.y * kHeadRows, w0 = blockIdx.x * kHeadCols;
  auto cp16 = [](uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
  };
  for (int i = tid; i < kHeadOutputs * 9 * (CP / 8); i += kHeadThreads) {
    const int row = i / (CP / 8), ch = i % (CP / 8);
    cp16(sw + row * WROW + ch * 16, w + size_t(row) * CP + ch * 8, 16);
  }
  float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
  for (int s = 0; s < 3; s++) {
    __syncthreads();  // every warp is done with the previous slot's halo
    for (int i = tid; i < HP * WP * (C / 8); i += kHeadThreads) {
      const int px = i / (C / 8), ch = i % (C / 8);
      const int hy = h0 - 1 + px / WP, wx = w0 - 1 + px % WP;
      const bool in = hy >= 0 && hy < H && wx >= 0 && wx < W;
      const __nv_bfloat16* src = in ? ring + (size_t(hy) * W + wx) * CP + s * C + ch * 8 : ring;
      cp16(sh + px * PIX + ch * 16, src, in ? 16 : 0);  // outside the image: zeros (the conv's padding)
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    __syncthreads();
#pragma unroll
    for (int tap = 0; tap < 9; tap++) {
      const int kh = tap / 3, kw = tap % 3;
#pragma unroll
      for (int kc = 0; kc < C / 16; kc++) {
        const int k = s * C + kc * 16 + (lane & 3) * 2;
        const uint32_t wb = sw + ((lane >> 2) * 9 + tap) * WROW + k * 2;
        uint32_t b0, b1;
        asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(b0) : "r"(wb));
        asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(b1) : "r"(wb + 16));
#pragma unroll
        for (int m = 0; m < 2; m++) {
          const uint32_t a = sh + ((wi + kh) * WP + m * 16 + (lane & 15) + kw) * PIX + (kc * 16 + (lane >> 4) * 8) * 2;
          uint32_t a0, a1, a2, a3;
          asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                       : "=r"(a0), "=r"(a1), "=r"(a2), "=r"(a3)
                       : "r"(a));
          asm volatile(
              "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
              "{%0, %1, %2, %3};\n"
              : "+f"(acc[m][0]), "+f"(acc[m][1]), "+f"(acc[m][2]), "+f"(acc[m][3])
              : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
        }
      }
    }
  }
  const int h = h0 + wi, n = (lane & 3) * 2;
  const float b0 = bias ? bias[n] : 0.f, b1 = bias ? bias[n + 1] : 0.f;
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int wx = w0 + m * 16 + (lane >> 2) + half * 8;
      if (h >= H || wx >= W) continue;
      __nv_bfloat162* dst = reinterpret_cast<__nv_bfloat162*>(y + (size_t(h) * W + wx) * kHeadOutputs + n);
      float v0 = acc[m][2 * half] + b0, v1 = acc[m][2 * half + 1] + b1;
      if (accumulate) {
        const float2 old = __bfloat1622float2(*dst);
        v0 += old.x, v1 += old.y;
      }
      *dst = __floats2bfloat162_rn(v0, v1);
    }
}

unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count()) * 32;
  return unsigned(std::max<int64_t>(1, std::min(b, cap)));
}

struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  size_t ws = 0;
  bool supported = true;
};

void set_ndhwc(cudnnTensorDescriptor_t d, int T, int H, int W, int C) {
  const int dims[5] = {1, C, T, H, W};
  const int strides[5] = {T * H * W * C, 1, H * W * C, W * C, C};
  TD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, CUDNN_DATA_BFLOAT16, 5, dims, strides));
}

// (T, H, W, C, O, kt, kh, kw, st, sh, sw, ph, pw, two_d). With two_d, T is the batch (output frames), kt is 1 and
// st is the input frame step between batch entries.
using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int, int>;

// Descriptors + algorithm per distinct problem, found once. `y_probe` is scratch FindEx may overwrite.
Descs& descs_for(const Key& k, const void* x, const void* w, int To, int Ho, int Wo) {
  static std::map<Key, Descs> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  int T, H, W, C, O, kt, kh, kw, st, sh, sw, ph, pw, two_d;
  std::tie(T, H, W, C, O, kt, kh, kw, st, sh, sw, ph, pw, two_d) = k;
  Descs d;
  TD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.x));
  TD_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.y));
  TD_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d.w));
  TD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv));
  if (two_d) {
    const int xd[4] = {T, C, H, W}, xs[4] = {st * H * W * C, 1, W * C, C};
    const int yd[4] = {To, O, Ho, Wo}, ys[4] = {Ho * Wo * O, 1, Wo * O, O};
    TD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d.x, CUDNN_DATA_BFLOAT16, 4, xd, xs));
    TD_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d.y, CUDNN_DATA_BFLOAT16, 4, yd, ys));
    const int fdims[4] = {O, C, kh, kw};
    TD_CUDNN_CHECK(cudnnSetFilterNdDescriptor(d.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, 4, fdims));
    const int pads[2] = {ph, pw}, strides[2] = {sh, sw}, dil[2] = {1, 1};
    TD_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(d.conv, 2, pads, strides, dil, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  } else {
    set_ndhwc(d.x, T, H, W, C);
    set_ndhwc(d.y, To, Ho, Wo, O);
    const int fdims[5] = {O, C, kt, kh, kw};
    TD_CUDNN_CHECK(cudnnSetFilterNdDescriptor(d.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, 5, fdims));
    const int pads[3] = {0, ph, pw}, strides[3] = {st, sh, sw}, dil[3] = {1, 1, 1};
    TD_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(d.conv, 3, pads, strides, dil, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  }
  TD_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, CUDNN_TENSOR_OP_MATH));
  int outd[5];
  TD_CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(d.conv, d.x, d.w, two_d ? 4 : 5, outd));
  if (two_d) {
    TD_ASSERT(outd[0] == To && outd[1] == O && outd[2] == Ho && outd[3] == Wo, "cuDNN 2-D output dims disagree");
  } else {
    TD_ASSERT(outd[1] == O && outd[2] == To && outd[3] == Ho && outd[4] == Wo, "cuDNN output dims disagree");
  }

  // Time the candidates on scratch output and workspace (the real y may hold a residual we accumulate into).
  const size_t ybytes = size_t(To) * Ho * Wo * O * 2;
  void* yprobe = device_alloc(ybytes);
  // TD_VAE_CUDNN_WS_MB overrides the workspace cap (to see whether a faster algorithm hides behind it).
  static const size_t ws_cap = [] {
    const char* e = std::getenv("TD_VAE_CUDNN_WS_MB");
    return e && *e ? size_t(std::atol(e)) << 20 : conv3d_config::kMaxWorkspace;
  }();
  size_t ws_bytes = ws_cap;
  void* ws = nullptr;
  try {
    ws = device_alloc(ws_bytes);
  } catch (const Error&) {
    ws_bytes = size_t(64) << 20;
    ws = device_alloc(ws_bytes);
  }
  cudnnConvolutionFwdAlgoPerf_t perf[conv3d_config::kFindCandidates];
  int found = 0;
  cudnnStatus_t st_find = cudnnFindConvolutionForwardAlgorithmEx(
      handle(), d.x, x, d.w, w, d.conv, d.y, yprobe, conv3d_config::kFindCandidates, &found, perf, ws, ws_bytes);
  TD_CUDA_CHECK(cudaStreamSynchronize(stream()));
  device_free(ws, ws_bytes);
  device_free(yprobe, ybytes);
  d.supported = false;
  if (st_find == CUDNN_STATUS_SUCCESS) {
    for (int i = 0; i < found; i++) {
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ws_bytes) {
        d.algo = perf[i].algo;
        d.ws = perf[i].memory;
        d.supported = true;
        log_debug("vae conv3d [", T, ",", H, ",", W, ",", C, "]->", O, " k", kt, kh, kw, ": cuDNN algo ",
                  int(d.algo), " ", perf[i].time, " ms, ws ", d.ws);
        break;
      }
    }
  }
  if (!d.supported)
    log_warn("vae conv3d: cuDNN has no algorithm for [", T, ",", H, ",", W, ",", C, "]->", O, " kernel ", kt, "x",
             kh, "x", kw, " (", cudnnGetErrorString(st_find), "); using the slow direct kernel");
  return cache.emplace(k, d).first->second;
}

void naive(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate,
           int pad_top, int pad_left, int dt0 = 0, int dt1 = -1) {
  if (dt1 < 0) dt1 = int(w.size(1));
  const int64_t n = y.numel();
  conv3d_naive_kernel<<<grid_for(n, conv3d_config::kNaiveThreads), conv3d_config::kNaiveThreads, 0, stream()>>>(
      x.ptr<__nv_bfloat16>(), w.ptr<__nv_bfloat16>(), bias ? bias->ptr<float>() : nullptr, y.ptr<__nv_bfloat16>(),
      int(x.size(1)), int(x.size(2)), int(x.size(3)), int(w.size(0)), int(w.size(1)), int(w.size(2)), int(w.size(3)),
      int(y.size(0)), int(y.size(1)), int(y.size(2)), p.stride_t, p.stride_h, p.stride_w, pad_top, pad_left,
      accumulate, dt0, dt1);
  TD_CUDA_LAUNCH_CHECK();
}

// cuDNN can accept a problem in FindEx and still refuse a later call on it (CUDNN_STATUS_BAD_PARAM was seen on the
// tiny-channel test model: bf16 channels-last with 4 channels). Parameter errors are reported before anything runs,
// so y is untouched and the direct kernel can take over; the problem is then marked unsupported so later calls skip
// cuDNN. Anything but a parameter/support refusal is a real failure and throws.
bool cudnn_refused(cudnnStatus_t st, Descs& d, const Key& k) {
  if (st == CUDNN_STATUS_SUCCESS) return false;
  if (st != CUDNN_STATUS_BAD_PARAM && st != CUDNN_STATUS_NOT_SUPPORTED) TD_CUDNN_CHECK(st);
  int T, H, W, C, O, kt, kh, kw, s1, s2, s3, ph, pw, two_d;
  std::tie(T, H, W, C, O, kt, kh, kw, s1, s2, s3, ph, pw, two_d) = k;
  log_warn("vae conv3d: cuDNN refused [", T, ",", H, ",", W, ",", C, "]->", O, " kernel ", kt, "x", kh, "x", kw,
           two_d ? " (2-D taps)" : "", " at run time (", cudnnGetErrorString(st), "); using the direct kernel");
  d.supported = false;
  return true;
}

// `forced`: the mode to use instead of TD_VAE_CONV's (Auto = follow it).
void conv3d_impl(const Tensor& x_in, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p,
                 bool accumulate, ConvMode forced) {
  expect_cuda(x_in, "conv3d input");
  expect_cuda(w, "conv3d weight");
  expect_cuda(y, "conv3d output");
  expect_dtype(x_in, DType::BF16, "conv3d input");
  expect_dtype(w, DType::BF16, "conv3d weight");
  expect_dtype(y, DType::BF16, "conv3d output");
  TD_CHECK(x_in.is_contiguous() && w.is_contiguous() && y.is_contiguous(), "conv3d", "tensors must be contiguous");
  if (bias) {
    expect_cuda(*bias, "conv3d bias");
    expect_dtype(*bias, DType::F32, "conv3d bias");
    TD_CHECK(bias->numel() == w.size(0), "conv3d bias", "has ", bias->numel(), " values, expected ", w.size(0));
  }
  Shape os = p.out_shape(x_in.shape(), w.shape(), "conv3d");
  expect_shape(y, os, "conv3d output");
  TD_CHECK(x_in.numel() < (int64_t(1) << 31) && y.numel() < (int64_t(1) << 31), "conv3d",
           "tensor too large for cuDNN's 32-bit indexing: ", shape_str(x_in.shape()));

  // cuDNN pads symmetrically; materialise asymmetric padding (the encoder's downsample) first.
  Tensor x = x_in;
  Conv3dParams q = p;
  const bool sym = p.pad_top == p.pad_bottom && p.pad_left == p.pad_right;
  if (!sym) {
    const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
    const int64_t Hp = H + p.pad_top + p.pad_bottom, Wp = W + p.pad_left + p.pad_right;
    x = Tensor::empty({T, Hp, Wp, C}, DType::BF16, Device::CUDA);
    pad_kernel<<<grid_for(x.numel(), 256), 256, 0, stream()>>>(x_in.ptr<__nv_bfloat16>(), x.ptr<__nv_bfloat16>(),
                                                                int(T), int(H), int(W), int(C), int(Hp), int(Wp),
                                                                p.pad_top, p.pad_left);
    TD_CUDA_LAUNCH_CHECK();
    q.pad_top = q.pad_bottom = q.pad_left = q.pad_right = 0;
  }
  ConvMode mode = conv_mode() == ConvMode::Naive || forced == ConvMode::Auto ? conv_mode() : forced;
  if (mode == ConvMode::Auto)
    mode = std::max(x.size(3), w.size(0)) <= conv3d_config::kTaps2dMaxChannels ? ConvMode::Cudnn2dTaps
                                                                                  : ConvMode::Cudnn3d;
  if (mode == ConvMode::Naive) return naive(x, w, bias, y, q, accumulate, q.pad_top, q.pad_left);

  const int T = int(x.size(0)), H = int(x.size(1)), W = int(x.size(2)), C = int(x.size(3));
  const int O = int(w.size(0)), kt = int(w.size(1)), kh = int(w.size(2)), kw = int(w.size(3));
  const int To = int(os[0]), Ho = int(os[1]), Wo = int(os[2]);
  const float alpha = 1.f;
  if (mode == ConvMode::Cudnn2dTaps) {
    // y = sum over time taps dt of conv2d(x[dt + st * t], w[:, dt]); each tap's weights gathered contiguous first.
    const size_t tap = size_t(kh) * kw * C;
    Tensor wt = kt == 1 ? w : Tensor::empty({O, kh, kw, C}, DType::BF16, Device::CUDA);
    // One problem shape serves every tap (the algorithm search reads the first tap's weights in place).
    const Key k{To, H, W, C, O, 1, kh, kw, q.stride_t, q.stride_h, q.stride_w, q.pad_top, q.pad_left, 1};
    Descs& d = descs_for(k, x.data(), w.data(), To, Ho, Wo);
    if (!d.supported) return naive(x, w, bias, y, q, accumulate, q.pad_top, q.pad_left);
    void* ws = d.ws ? device_alloc(d.ws) : nullptr;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    int dt = 0;
    for (; dt < kt; dt++) {
      if (kt > 1)
        TD_CUDA_CHECK(cudaMemcpy2DAsync(wt.data(), tap * 2, w.ptr<__nv_bfloat16>() + dt * tap, size_t(kt) * tap * 2,
                                        tap * 2, size_t(O), cudaMemcpyDeviceToDevice, stream()));
      const float beta = (dt > 0 || accumulate) ? 1.f : 0.f;
      st = cudnnConvolutionForward(handle(), &alpha, d.x, x.ptr<__nv_bfloat16>() + size_t(dt) * H * W * C, d.w,
                                   wt.data(), d.conv, d.algo, ws, d.ws, &beta, d.y, y.data());
      if (st != CUDNN_STATUS_SUCCESS) break;
    }
    if (ws) device_free(ws, d.ws);
    // Taps [0, dt) are in y already; the direct kernel adds the rest (bias below, as for cuDNN).
    if (cudnn_refused(st, d, k)) naive(x, w, nullptr, y, q, dt > 0 || accumulate, q.pad_top, q.pad_left, dt, kt);
  } else {
    const Key k{T, H, W, C, O, kt, kh, kw, q.stride_t, q.stride_h, q.stride_w, q.pad_top, q.pad_left, 0};
    Descs& d = descs_for(k, x.data(), w.data(), To, Ho, Wo);
    if (!d.supported) return naive(x, w, bias, y, q, accumulate, q.pad_top, q.pad_left);
    void* ws = d.ws ? device_alloc(d.ws) : nullptr;
    const float beta = accumulate ? 1.f : 0.f;
    cudnnStatus_t st = cudnnConvolutionForward(handle(), &alpha, d.x, x.data(), d.w, w.data(), d.conv, d.algo, ws,
                                               d.ws, &beta, d.y, y.data());
    if (ws) device_free(ws, d.ws);
    if (cudnn_refused(st, d, k)) return naive(x, w, bias, y, q, accumulate, q.pad_top, q.pad_left);
  }
  if (bias) {
    const int64_t O = w.size(0);
    if (O % 2 == 0) {
      add_bias2_kernel<<<grid_for(y.numel() / 2, 256), 256, 0, stream()>>>(
          static_cast<__nv_bfloat162*>(y.data()), bias->ptr<float>(), y.numel() / 2, int(O / 2));
    } else {
      add_bias_kernel<<<grid_for(y.numel(), 256), 256, 0, stream()>>>(y.ptr<__nv_bfloat16>(), bias->ptr<float>(),
                                                                     y.numel() / O, int(O));
    }
    TD_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

// A/B switches for our wgmma conv kernel (conv2d_wgmma.h), all on by default: TD_VAE_WGMMA=0 runs every VAE conv
// through cuDNN; TD_VAE_WGMMA_CAUSAL=0 only the 3x3x3 causal convs, TD_VAE_FUSED_NORM=0 unfuses the ring norm.
static bool env_flag(const char* name, bool dflt) {
  const char* e = std::getenv(name);
  return e && *e ? std::string(e) != "0" : dflt;
}
static bool wgmma_convs() {
  static const bool on = env_flag("TD_VAE_WGMMA", true);
  return on && conv_mode() != ConvMode::Naive;
}

// The sub-pixel up-sampling convs (2x2, pad 1, 4 phases x O outputs) on the wgmma kernel: cuDNN ran them at ~125
// TFLOP/s on the H100.
static bool subpixel_wgmma(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y,
                           const Conv3dParams& p) {
  return wgmma_convs() && x.dim() == 4 && w.dim() == 5 && w.size(1) == 1 && w.size(2) == 2 && w.size(3) == 2 &&
         p.stride_t == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 1 && p.pad_bottom == 1 &&
         p.pad_left == 1 && p.pad_right == 1 && x.dtype() == DType::BF16 && w.dtype() == DType::BF16 &&
         y.dtype() == DType::BF16 && x.is_contiguous() && w.is_contiguous() && y.is_contiguous() && x.is_cuda() &&
         w.is_cuda() && y.is_cuda() && (!bias || (bias->dtype() == DType::F32 && bias->is_cuda())) &&
         conv2d_wgmma_fits(x.size(3), w.size(0), 2, 2) && conv2d_wgmma_available();
}

// Convs that are 1x1 in space (the VAE's pointwise convs and its 3x1x1 time convs) as cuBLASLt GEMMs over
// [frames x pixels, C], one per time tap, accumulating: cuDNN took 0.1-0.3 ms for each of these small problems (H100
// decode profile: ~10-30 TFLOP/s). TD_VAE_GEMM_1X1=0 leaves them on cuDNN.
static bool spatial_1x1_gemm(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p,
                             bool accumulate) {
  static const bool on = env_flag("TD_VAE_GEMM_1X1", true);
  if (!on || x.dim() != 4 || w.dim() != 5 || w.size(2) != 1 || w.size(3) != 1 || p.stride_t != 1 ||
      p.stride_h != 1 || p.stride_w != 1 || p.pad_top || p.pad_bottom || p.pad_left || p.pad_right ||
      x.dtype() != DType::BF16 || w.dtype() != DType::BF16 || y.dtype() != DType::BF16 || !x.is_contiguous() ||
      !w.is_contiguous() || !y.is_contiguous() || !x.is_cuda() || !w.is_cuda() || !y.is_cuda() ||
      w.size(4) != x.size(3) || x.size(3) % 8 != 0 || w.size(0) % 8 != 0 || x.size(0) < w.size(1) ||
      (bias && (bias->numel() != w.size(0) || !bias->is_cuda())))
    return false;
  const int64_t kt = w.size(1), To = x.size(0) - kt + 1, P = x.size(1) * x.size(2), C = x.size(3), O = w.size(0);
  expect_shape(y, {To, x.size(1), x.size(2), O}, "conv3d output");
  Tensor yv = y.view({To * P, O});
  for (int64_t dt = 0; dt < kt; dt++) {
    const Tensor wd = w.select(1, dt).select(1, 0).select(1, 0);  // [O, C], rows kt * C apart
    cuda::linear(x.slice(0, dt, dt + To).view({To * P, C}), wd, dt == 0 ? bias : nullptr, yv, Epilogue::None,
                 accumulate || dt > 0);
  }
  return true;
}

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate) {
  if (subpixel_wgmma(x, w, bias, y, p)) return conv2d_wgmma(x, w, bias, y, accumulate);
  if (spatial_1x1_gemm(x, w, bias, y, p, accumulate)) return;
  conv3d_impl(x, w, bias, y, p, accumulate, ConvMode::Auto);
}

bool conv3d_subpixel_shuffled(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p) {
  static const bool on = env_flag("TD_VAE_FUSED_SHUFFLE", true);
  if (!on || !subpixel_wgmma(x, w, bias, y, p) || w.size(0) % 384 != 0) return false;
  conv2d_wgmma_subpixel(x, w, bias, y);
  return true;
}

void conv3d_ring(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Conv3dParams& p,
                 bool accumulate) {
  TD_CHECK(ring.dim() == 4 && ring.size(0) == 1 && w_rot.dim() == 5 && w_rot.size(1) == 1 &&
               w_rot.size(4) == ring.size(3) && p.stride_t == 1,
           "conv3d_ring", "expected ring [1, H, W, 3C] and rotated weights [O, 1, kh, kw, 3C], got ",
           shape_str(ring.shape()), " and ", shape_str(w_rot.shape()));
  const int64_t H = ring.size(1), W = ring.size(2), CP = ring.size(3), O = w_rot.size(0);
  static const bool head_kernel = [] {
    const char* e = std::getenv("TD_VAE_HEAD");  // "cudnn": run the narrow convs through cuDNN too (to compare)
    return !(e && std::string(e) == "cudnn");
  }();
  const bool conv3x3 = w_rot.size(2) == 3 && w_rot.size(3) == 3 && p.stride_h == 1 && p.stride_w == 1 &&
                       p.pad_top == 1 && p.pad_bottom == 1 && p.pad_left == 1 && p.pad_right == 1 &&
                       conv_mode() != ConvMode::Naive;
  const bool head = head_kernel && conv3x3 && O == conv3d_config::kHeadOutputs &&
                    CP == 3 * conv3d_config::kHeadMaxSlotChannels;
  const bool wide = wgmma_convs() && conv3x3 && conv2d_wgmma_fits(CP, O, 3, 3) && conv2d_wgmma_available();
  if (head || wide) {
    expect_cuda(ring, "conv3d_ring ring");
    expect_cuda(w_rot, "conv3d_ring weights");
    expect_cuda(y, "conv3d_ring output");
    TD_CHECK(ring.dtype() == DType::BF16 && w_rot.dtype() == DType::BF16 && y.dtype() == DType::BF16 &&
                 ring.is_contiguous() && w_rot.is_contiguous() && y.is_contiguous(),
             "conv3d_ring", "expected contiguous bf16 tensors");
    expect_shape(y, {1, H, W, O}, "conv3d_ring output");
    if (bias) TD_CHECK(bias->numel() == O && bias->dtype() == DType::F32 && bias->is_cuda(), "conv3d_ring bias",
                       "expected ", O, " f32 values on the GPU");
  }
  if (wide) return conv2d_wgmma(ring, w_rot, bias, y, accumulate);
  if (head) {
    constexpr int C = conv3d_config::kHeadMaxSlotChannels;
    constexpr int smem = conv3d_config::kHeadOutputs * 9 * (3 * C * 2 + 16) +
                         (conv3d_config::kHeadRows + 2) * (conv3d_config::kHeadCols + 2) * (C * 2 + 16);
    static bool configured = false;
    if (!configured) {
      TD_CUDA_CHECK(cudaFuncSetAttribute(head_conv_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      configured = true;
    }
    const dim3 grid(unsigned((W + conv3d_config::kHeadCols - 1) / conv3d_config::kHeadCols),
                    unsigned((H + conv3d_config::kHeadRows - 1) / conv3d_config::kHeadRows));
    head_conv_kernel<C><<<grid, conv3d_config::kHeadThreads, smem, stream()>>>(
        ring.ptr<__nv_bfloat16>(), w_rot.ptr<__nv_bfloat16>(), bias ? bias->ptr<float>() : nullptr,
        y.ptr<__nv_bfloat16>(), int(H), int(W), accumulate);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  // A 2-D conv with 3C input channels: cuDNN's 2-D kernels (measured on the H100 at 288/576/1152 input channels:
  // 520-590 TFLOP/s) rather than a 3-D conv of depth 1.
  conv3d_impl(ring, w_rot, bias, y, p, accumulate, ConvMode::Cudnn2dTaps);
}

bool conv3d_ring_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, const Tensor& gamma,
                      Tensor& ring_out, int slot, const Conv3dParams& p, Tensor* residual, const Tensor* pre_bias) {
  // TD_VAE_FUSED_RES_NORM: 0 = never with a residual, 96 = only for 96 outputs.
  static const int64_t res_max = [] {
    const char* e = std::getenv("TD_VAE_FUSED_RES_NORM");
    return !e || !*e ? int64_t(192) : std::string(e) == "0" ? int64_t(0) : std::string(e) == "96" ? int64_t(96) : 192;
  }();
  if (residual && (w_rot.dim() != 5 || w_rot.size(0) > res_max)) return false;
  // 96 and 192 outputs (one tile holds all of a pixel's outputs). H100, bench vae --convs, 240x416 frame: 192 fused
  // 0.379 ms against 0.343 + ~0.048 ms for the plain conv and the separate norm (before the shared-memory epilogue the
  // fused one lost: 0.412 vs 0.340 + 0.043).
  static const bool on = env_flag("TD_VAE_FUSED_NORM", true);
  const int64_t O = w_rot.dim() == 5 ? w_rot.size(0) : 0;
  if (!on || !wgmma_convs() || (O != 96 && O != 192) || !conv2d_wgmma_available() || ring.dim() != 4 ||
      !conv2d_wgmma_fits(ring.size(3), O, w_rot.size(2), w_rot.size(3)) || w_rot.size(2) != 3 || p.stride_h != 1 ||
      p.stride_w != 1 || p.pad_top != 1 || p.pad_bottom != 1 || p.pad_left != 1 || p.pad_right != 1)
    return false;
  expect_cuda(ring, "conv3d_ring_norm ring");
  expect_cuda(w_rot, "conv3d_ring_norm weights");
  TD_CHECK(ring.dtype() == DType::BF16 && w_rot.dtype() == DType::BF16 && ring.is_contiguous() && w_rot.is_contiguous(),
           "conv3d_ring_norm", "expected contiguous bf16 tensors");
  TD_CHECK(slot >= 0 && slot < 3 && ring_out.dim() == 4 && ring_out.size(3) == 3 * O, "conv3d_ring_norm",
           "ring ", shape_str(ring_out.shape()), " has no slot ", slot, " of ", O, " channels");
  if (bias) TD_CHECK(bias->numel() == O && bias->dtype() == DType::F32 && bias->is_cuda(), "conv3d_ring_norm bias",
                     "expected ", O, " f32 values on the GPU");
  if (residual) expect_shape(*residual, Shape{1, ring.size(1), ring.size(2), O}, "conv3d_ring_norm residual");
  conv2d_wgmma_norm(ring, w_rot, bias, ConvNormOut{&gamma, &ring_out, int(slot * O), residual, pre_bias});
  return true;
}

bool conv3d_uses_taps(int64_t C, int64_t O) {
  const ConvMode m = conv_mode();
  return m == ConvMode::Cudnn2dTaps || (m == ConvMode::Auto && std::max(C, O) <= conv3d_config::kTaps2dMaxChannels);
}

namespace {
// Channel counts in multiples of 8 only: cuDNN accepted 4-channel problems in FindEx and refused them at run time,
// which the taps path (several calls accumulating into y) could not recover from.
bool taps_direct(int64_t C, int64_t O) { return conv3d_uses_taps(C, O) && C % 8 == 0 && O % 8 == 0; }
// 3x3x3 causal convs on the wgmma kernel (H100, 81x480x832 decode: the 384-channel convs at 60x104 ran at ~270
// TFLOP/s on cuDNN's 3-D kernels one frame per call, and its [history, input] copies cost ~20 ms).
bool causal_wgmma(int64_t C, int64_t O, int64_t kh, int64_t kw) {
  static const bool on = env_flag("TD_VAE_WGMMA_CAUSAL", true);
  return on && wgmma_convs() && kh == 3 && kw == 3 && conv2d_wgmma_fits(C, O, 3, 3) && conv2d_wgmma_available();
}
}  // namespace

bool conv3d_causal_direct(const Tensor& w) {
  if (w.dim() != 5 || w.size(1) != 3) return false;
  const int64_t O = w.size(0), kh = w.size(2), kw = w.size(3), C = w.size(4);
  return causal_wgmma(C, O, kh, kw) || taps_direct(C, O);
}

void conv3d_causal(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                   const Conv3dParams& p, bool accumulate) {
  expect_cuda(x, "conv3d_causal input");
  expect_cuda(w, "conv3d_causal weight");
  expect_cuda(y, "conv3d_causal output");
  expect_dtype(x, DType::BF16, "conv3d_causal input");
  expect_dtype(w, DType::BF16, "conv3d_causal weight");
  expect_dtype(y, DType::BF16, "conv3d_causal output");
  TD_CHECK(x.dim() == 4 && w.dim() == 5 && w.size(1) == 3 && w.size(4) == x.size(3) && p.stride_t == 1 &&
               x.is_contiguous() && w.is_contiguous() && y.is_contiguous(),
           "conv3d_causal", "expected x [n, H, W, C] and w [O, 3, kh, kw, C], got ", shape_str(x.shape()), " and ",
           shape_str(w.shape()));
  if (causal_wgmma(x.size(3), w.size(0), w.size(2), w.size(3)) && p.pad_top == 1 && p.pad_bottom == 1 &&
      p.pad_left == 1 && p.pad_right == 1 && p.stride_h == 1 && p.stride_w == 1) {
    if (bias) TD_CHECK(bias->numel() == w.size(0) && bias->dtype() == DType::F32 && bias->is_cuda(),
                       "conv3d_causal bias", "expected ", w.size(0), " f32 values on the GPU");
    expect_shape(y, {x.size(0), x.size(1), x.size(2), w.size(0)}, "conv3d_causal output");
    return conv3d_causal_wgmma(hist, x, w, bias, y, accumulate);
  }
  const int64_t cf = hist.defined() ? hist.size(0) : 0;
  if (cf) {
    expect_cuda(hist, "conv3d_causal history");
    TD_CHECK(cf <= 2 && hist.dtype() == DType::BF16 && hist.is_contiguous() && hist.size(1) == x.size(1) &&
                 hist.size(2) == x.size(2) && hist.size(3) == x.size(3),
             "conv3d_causal", "history ", shape_str(hist.shape()), " does not match input ", shape_str(x.shape()));
  }
  const int n = int(x.size(0)), H = int(x.size(1)), W = int(x.size(2)), C = int(x.size(3));
  const int O = int(w.size(0)), kh = int(w.size(2)), kw = int(w.size(3));
  Shape bs = x.shape();
  bs[0] += 2;
  Shape os = p.out_shape(bs, w.shape(), "conv3d_causal");
  expect_shape(y, os, "conv3d_causal output");
  const int Ho = int(os[1]), Wo = int(os[2]);
  const bool sym = p.pad_top == p.pad_bottom && p.pad_left == p.pad_right;
  const size_t xf = size_t(H) * W * C, yf = size_t(Ho) * Wo * O;  // elements per frame

  // The 2-D calls: (tap, first output frame, frames, source frame pointer). Tap 2 reads x[t] for every t and goes
  // first (it sets or accumulates y); taps 1 and 0 add their history and input parts; all-zero history is skipped.
  struct Call { int dt, t0, nb; const __nv_bfloat16* src; };
  std::vector<Call> calls;
  const __nv_bfloat16* xp = x.ptr<__nv_bfloat16>();
  const __nv_bfloat16* hp = cf ? hist.ptr<__nv_bfloat16>() : nullptr;
  calls.push_back({2, 0, n, xp});
  for (int dt = 1; dt >= 0; dt--) {
    const int lag = 2 - dt;  // output t reads frame t - lag of x, or history frame cf + t - lag when that is < 0
    const int h0 = std::max(0, lag - int(cf)), h1 = std::min(n, lag);
    if (h1 > h0) calls.push_back({dt, h0, h1 - h0, hp + size_t(cf + h0 - lag) * xf});
    if (n > lag) calls.push_back({dt, lag, n - lag, xp});
  }
  bool ok = taps_direct(C, O) && sym && x.numel() < (int64_t(1) << 31) &&
            (!cf || hist.numel() < (int64_t(1) << 31)) && y.numel() < (int64_t(1) << 31);
  std::vector<Descs*> ds;
  for (const Call& c : calls) {
    if (!ok) break;
    const Key k{c.nb, H, W, C, O, 1, kh, kw, 1, p.stride_h, p.stride_w, p.pad_top, p.pad_left, 1};
    Descs& d = descs_for(k, c.src, w.data(), c.nb, Ho, Wo);
    ok = d.supported;
    ds.push_back(&d);
  }
  if (!ok) {
    // Same result through the contiguous [zeros, history, x] buffer and the general path.
    Tensor buf = Tensor::empty(bs, DType::BF16, Device::CUDA);
    if (cf < 2) TD_CUDA_CHECK(cudaMemsetAsync(buf.data(), 0, size_t(2 - cf) * xf * 2, stream()));
    if (cf) buf.slice(0, 2 - cf, 2).copy_from(hist);
    buf.slice(0, 2, 2 + n).copy_from(x);
    return conv3d(buf, w, bias, y, p, accumulate);
  }
  const size_t tap = size_t(kh) * kw * C;
  Tensor wt = Tensor::empty({3, O, kh, kw, C}, DType::BF16, Device::CUDA);  // taps made contiguous
  for (int dt = 0; dt < 3; dt++)
    TD_CUDA_CHECK(cudaMemcpy2DAsync(wt.ptr<__nv_bfloat16>() + dt * O * tap, tap * 2, w.ptr<__nv_bfloat16>() + dt * tap,
                                    3 * tap * 2, tap * 2, size_t(O), cudaMemcpyDeviceToDevice, stream()));
  size_t ws_bytes = 0;
  for (Descs* d : ds) ws_bytes = std::max(ws_bytes, d->ws);
  void* ws = ws_bytes ? device_alloc(ws_bytes) : nullptr;
  const float alpha = 1.f;
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  for (size_t i = 0; i < calls.size() && st == CUDNN_STATUS_SUCCESS; i++) {
    const Call& c = calls[i];
    const Descs& d = *ds[i];
    const float beta = (i > 0 || accumulate) ? 1.f : 0.f;
    st = cudnnConvolutionForward(handle(), &alpha, d.x, c.src, d.w, wt.ptr<__nv_bfloat16>() + c.dt * O * tap, d.conv,
                                 d.algo, ws, d.ws, &beta, d.y, y.ptr<__nv_bfloat16>() + size_t(c.t0) * yf);
  }
  if (ws) device_free(ws, ws_bytes);
  TD_CUDNN_CHECK(st);
  if (bias) {
    TD_CHECK(bias->numel() == O && bias->dtype() == DType::F32, "conv3d_causal bias", "expected ", O, " f32 values");
    if (O % 2 == 0) {
      add_bias2_kernel<<<grid_for(y.numel() / 2, 256), 256, 0, stream()>>>(
          static_cast<__nv_bfloat162*>(y.data()), bias->ptr<float>(), y.numel() / 2, O / 2);
    } else {
      add_bias_kernel<<<grid_for(y.numel(), 256), 256, 0, stream()>>>(y.ptr<__nv_bfloat16>(), bias->ptr<float>(),
                                                                     y.numel() / O, O);
    }
    TD_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace cuda
}  // namespace td
