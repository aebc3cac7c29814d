// y = x · w^T (+ bias) (+ tanh-GELU) through cuBLASLt: bf16 inputs, fp32 accumulation and epilogue, bf16 or f32 out.
//
// Row-major y[M,N] = x[M,K] w[N,K]^T is, in cuBLASLt's column-major terms, C[N,M] = op(A)[N,K] · B[K,M] with
// A = w stored as a K x N column-major matrix (transa = T) and B = x stored as K x M column-major (transb = N).
// Descriptors and the chosen algorithm are cached per (shape, strides, dtypes, epilogue, alignment); the DiT
// forward has a handful of distinct shapes, so after the first step each call is one cublasLtMatmul.
//
// Why the plan is made the way it is (measured on H100, docs/perf.md):
//  - cuBLASLt (12.x/13.0) offers no fused BIAS / GELU_BIAS kernel for a bf16 output with an f32 bias. The first
//    version then ran the plain GEMM plus a separate bias/GELU pass, which cost 40-50% at the DiT's shapes (one
//    extra read and write of the output). An f32 bias with a bf16 output is now rounded to a bf16 copy per call
//    (N elements, one tiny kernel) and the bf16-bias fused epilogue runs instead; see linear_config.h.
//  - The heuristic's first answer is not always the fastest kernel. For large shapes the candidates are timed once,
//    on first use, on the caller's own buffers, and the fastest is cached (linear_config::kAutotuneMinFlops).
#include "cuda/linear.h"

#include <cstring>
#include <string>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/linear_config.h"
#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using namespace detail;

struct Key {
  int64_t M, N, K, ldx, ldw, ldy;
  int out_f32, bias_kind, epilogue;  // bias_kind: 0 none, 1 bf16, 2 f32 (as passed by the caller)
  int align_x, align_w, align_y, align_b;
  int accumulate;  // y += ...: no autotune (it would overwrite y), beta = 1
  bool operator<(const Key& o) const {
    return std::tie(M, N, K, ldx, ldw, ldy, out_f32, bias_kind, epilogue, align_x, align_w, align_y, align_b,
                    accumulate) < std::tie(o.M, o.N, o.K, o.ldx, o.ldw, o.ldy, o.out_f32, o.bias_kind, o.epilogue,
                                           o.align_x, o.align_w, o.align_y, o.align_b, o.accumulate);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo;
  // False when cuBLASLt offered no algorithm with the bias (and GELU) fused for this combination: the GEMM then
  // runs plain and bias_act_kernel applies the epilogue.
  bool fused_epilogue = true;
  // True when an f32 bias is rounded to a bf16 copy so the fused bf16-bias epilogue can run (bf16 output).
  bool bias_to_bf16 = false;
  std::string how;  // for bench output: "fused bias+gelu, bf16 bias from f32, autotuned 3 of 8"
};

// y = act(y + bias) over [M, N] rows of stride ld; the fallback epilogue. Rows are grid-strided over blocks and
// columns over threads, so there is no 64-bit division per element.
template <typename Ty, typename Tb>
__global__ void bias_act_kernel(Ty* __restrict__ y, int64_t ld, const Tb* __restrict__ bias, int64_t M, int64_t N,
                                bool gelu) {
  for (int64_t r = blockIdx.x; r < M; r += gridDim.x) {
    Ty* row = y + r * ld;
    for (int64_t c = threadIdx.x; c < N; c += blockDim.x) {
      float v = to_f(row[c]) + (bias ? to_f(bias[c]) : 0.f);
      if (gelu) v = 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      row[c] = from_f<Ty>(v);
    }
  }
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

template <typename Ty>
void launch_bias_act(Tensor& y, int64_t ld, const Tensor* bias, int64_t M, int64_t N, bool gelu) {
  const unsigned blocks = unsigned(std::min<int64_t>(M, int64_t(sm_count()) * 16));
  if (bias && bias->dtype() == DType::F32)
    bias_act_kernel<Ty, float><<<blocks, 256, 0, stream()>>>(y.ptr<Ty>(), ld, bias->ptr<float>(), M, N, gelu);
  else
    bias_act_kernel<Ty, __nv_bfloat16><<<blocks, 256, 0, stream()>>>(
        y.ptr<Ty>(), ld, bias ? bias->ptr<__nv_bfloat16>() : nullptr, M, N, gelu);
  TD_CUDA_LAUNCH_CHECK();
}

int alignment_of(const void* p, int64_t ld, size_t elem) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p) | uintptr_t(ld * int64_t(elem));
  int a = 256;
  while (a > 1 && (v % uintptr_t(a))) a /= 2;
  return a;
}

// Buffers of the call that makes the plan; the autotune runs the candidates on them (y is overwritten anyway).
// bias_bf16: the caller's f32 bias rounded to bf16 (null unless the bias is f32 and the output bf16).
struct Operands {
  const void *x, *w, *bias, *bias_bf16;
  void* y;
};

// Times each heuristic candidate on the call's own buffers (one warm-up and linear_config::kAutotuneIters runs each)
// and keeps the fastest in p.algo. Skipped for small shapes (the timing would cost more than it saves) and while the
// stream is being captured into a graph (no synchronisation allowed). bias: what the fused epilogue reads.
void autotune(const Key& k, const Operands& ops, const void* bias, const cublasLtMatmulHeuristicResult_t* res,
              int found, Plan& p) {
  const double flops = 2.0 * double(k.M) * double(k.N) * double(k.K);
  if (found < 2 || flops < linear_config::kAutotuneMinFlops || k.accumulate) return;
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  TD_CUDA_CHECK(cudaStreamIsCapturing(stream(), &cap));
  if (cap != cudaStreamCaptureStatusNone) return;
  if (bias)
    TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  size_t ws_bytes = 0;
  void* ws = cublaslt_workspace(&ws_bytes);
  const float alpha = 1.f, beta = 0.f;
  cudaEvent_t ev[2];
  TD_CUDA_CHECK(cudaEventCreate(&ev[0]));
  TD_CUDA_CHECK(cudaEventCreate(&ev[1]));
  float best = 1e30f;
  int best_i = 0;
  for (int i = 0; i < found; i++) {
    auto run = [&] {
      return cublasLtMatmul(cublaslt(), p.desc, &alpha, ops.w, p.a, ops.x, p.b, &beta, ops.y, p.c, ops.y, p.c,
                            &res[i].algo, ws, ws_bytes, stream());
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate that refuses to run is skipped, not fatal
    TD_CUDA_CHECK(cudaEventRecord(ev[0], stream()));
    bool ok = true;
    for (int it = 0; it < linear_config::kAutotuneIters && ok; it++) ok = run() == CUBLAS_STATUS_SUCCESS;
    TD_CUDA_CHECK(cudaEventRecord(ev[1], stream()));
    TD_CUDA_CHECK(cudaEventSynchronize(ev[1]));
    float ms = 0.f;
    TD_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    if (ok && ms < best) best = ms, best_i = i;
  }
  cudaEventDestroy(ev[0]);
  cudaEventDestroy(ev[1]);
  p.algo = res[best_i].algo;
  p.how += cat(", autotuned: candidate ", best_i, " of ", found);
}

// Builds descriptors and picks an algorithm; if cuBLASLt has none, frees what it made and returns false.
// bias_kind is the bias dtype the epilogue reads (1 bf16, 2 f32), which may differ from k.bias_kind.
bool try_plan(const Key& k, bool fuse, int bias_kind, const Operands& ops, Plan& p, cublasStatus_t* status) {
  const cudaDataType_t out_t = k.out_f32 ? CUDA_R_32F : CUDA_R_16BF;
  TD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  const bool gelu = fuse && k.epilogue == int(Epilogue::GeluTanh) && linear_config::kUseCublasGelu;
  if (fuse && k.bias_kind)
    epi = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  else if (gelu)
    epi = CUBLASLT_EPILOGUE_GELU;
  TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  if (fuse && k.bias_kind) {
    int32_t bt = bias_kind == 2 ? CUDA_R_32F : CUDA_R_16BF;
    TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  TD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(k.K), uint64_t(k.N), k.ldw));
  TD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(k.K), uint64_t(k.M), k.ldx));
  TD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_t, uint64_t(k.N), uint64_t(k.M), k.ldy));

  cublasLtMatmulPreference_t pref;
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws_bytes = 0;
  cublaslt_workspace(&ws_bytes);
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                       sizeof(ws_bytes)));
  uint32_t al[4] = {uint32_t(k.align_w), uint32_t(k.align_x), uint32_t(k.align_y), uint32_t(k.align_y)};
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], 4));
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], 4));
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], 4));
  TD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3], 4));

  cublasLtMatmulHeuristicResult_t res[linear_config::kHeuristicCandidates];
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cublaslt(), p.desc, p.a, p.b, p.c, p.c, pref,
                                                     linear_config::kHeuristicCandidates, res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  *status = st;
  // Keep only the candidates cuBLASLt vouches for.
  int n_ok = 0;
  for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < found; i++)
    if (res[i].state == CUBLAS_STATUS_SUCCESS) res[n_ok++] = res[i];
  found = n_ok;
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatmulDescDestroy(p.desc);
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    p = Plan();
    return false;
  }
  p.algo = res[0].algo;
  p.fused_epilogue = fuse;
  p.how = cat(fuse && k.bias_kind ? (epi == CUBLASLT_EPILOGUE_GELU_BIAS ? "fused bias+gelu" : "fused bias")
                                  : (epi == CUBLASLT_EPILOGUE_GELU ? "fused gelu" : "plain gemm"),
              fuse && k.bias_kind && bias_kind != k.bias_kind ? " (bf16 copy of f32 bias)" : "",
              !fuse && (k.bias_kind || k.epilogue == int(Epilogue::GeluTanh)) ? " + separate bias/gelu kernel" : "");
  p.bias_to_bf16 = fuse && k.bias_kind == 2 && bias_kind == 1;
  autotune(k, ops, fuse && k.bias_kind ? (p.bias_to_bf16 ? ops.bias_bf16 : ops.bias) : nullptr, res, found, p);
  return true;
}

Plan make_plan(const Key& k, const Operands& ops) {
  Plan p;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  if (try_plan(k, true, k.bias_kind, ops, p, &st)) return p;
  if (ops.bias_bf16 && try_plan(k, true, 1, ops, p, &st)) return p;
  const bool has_epilogue = k.bias_kind || (k.epilogue == int(Epilogue::GeluTanh) && linear_config::kUseCublasGelu);
  if (has_epilogue && try_plan(k, false, k.bias_kind, ops, p, &st)) return p;
  fail("linear", cat("cuBLASLt has no algorithm for M=", k.M, " N=", k.N, " K=", k.K, " (",
                     k.out_f32 ? "f32" : "bf16", " output, alignments x/w/y ", k.align_x, "/", k.align_w, "/",
                     k.align_y, "): ", cublasGetStatusString(st)));
}

std::mutex g_mu;
std::string g_last_how;  // guarded by g_mu
std::map<Key, Plan>& plans() {
  static auto* m = new std::map<Key, Plan>();  // leaked: descriptors live as long as the process
  return *m;
}

}  // namespace

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep, bool accumulate) {
  TD_CHECK(!(accumulate && ep != Epilogue::None), "linear", "an accumulating linear takes no activation epilogue");
  expect_cuda(x, "linear input");
  expect_cuda(w, "linear weight");
  expect_cuda(y, "linear output");
  expect_dtype(x, DType::BF16, "linear input");
  expect_dtype(w, DType::BF16, "linear weight");
  expect_dtype_in(y, "linear output", {DType::BF16, DType::F32});
  TD_CHECK(w.dim() == 2 && w.strides()[1] == 1 && w.strides()[0] >= w.size(1), "linear weight", w.describe(),
           " must be [N, K] with contiguous rows");
  const int64_t N = w.size(0), K = w.size(1);
  Rows rx = rows_of(x, "linear input"), ry = rows_of(y, "linear output");
  TD_CHECK(rx.D == K, "linear input", x.describe(), " has ", rx.D, " features, weight ", w.describe(), " wants ", K);
  TD_CHECK(ry.D == N && ry.M == rx.M, "linear output", y.describe(), " must be [", rx.M, ", ", N, "]");
  int bias_kind = 0;
  if (bias) {
    expect_cuda(*bias, "linear bias");
    expect_dtype_in(*bias, "linear bias", {DType::BF16, DType::F32});
    TD_CHECK(bias->numel() == N && bias->is_contiguous(), "linear bias", bias->describe(), " must have ", N,
             " contiguous elements");
    bias_kind = bias->dtype() == DType::F32 ? 2 : 1;
  }
  const bool out_f32 = y.dtype() == DType::F32;
  if (rx.M == 0 || N == 0) return;
  TD_CHECK(K > 0, "linear input", "K must be positive");

  Key key{rx.M, N, K, rx.ld, w.strides()[0], ry.ld, out_f32 ? 1 : 0, bias_kind, int(ep),
          alignment_of(x.data(), rx.ld, 2), alignment_of(w.data(), w.strides()[0], 2),
          alignment_of(y.data(), ry.ld, out_f32 ? 4 : 2),
          bias ? alignment_of(bias->data(), 0, bias_kind == 2 ? 4 : 2) : 256, accumulate ? 1 : 0};
  // The lock also covers the call: the bias pointer is an attribute of the shared cached descriptor.
  std::lock_guard<std::mutex> lk(g_mu);
  // An f32 bias with a bf16 output: a bf16 copy, made before planning (the plan may use it, and the autotune needs
  // it) or afterwards when the cached plan says so. Lives until this call returns; the allocator is stream-ordered.
  Tensor bias_bf16;
  auto convert_bias = [&] {
    bias_bf16 = Tensor::empty({N}, DType::BF16, Device::CUDA);
    f32_to_bf16_kernel<<<ceil_div(N, 256), 256, 0, stream()>>>(bias->ptr<float>(), bias_bf16.ptr<__nv_bfloat16>(), N);
    TD_CUDA_LAUNCH_CHECK();
  };
  auto it = plans().find(key);
  if (it == plans().end()) {
    if (bias_kind == 2 && !out_f32 && linear_config::kRoundF32BiasForFusion) convert_bias();
    Operands ops{x.data(), w.data(), bias ? bias->data() : nullptr, bias_bf16.defined() ? bias_bf16.data() : nullptr,
                 y.data()};
    it = plans().emplace(key, make_plan(key, ops)).first;
    g_last_how = it->second.how;
  }
  Plan& plan = it->second;
  if (plan.bias_to_bf16 && !bias_bf16.defined()) convert_bias();
  if (bias && plan.fused_epilogue) {
    const void* bp = plan.bias_to_bf16 ? bias_bf16.data() : bias->data();
    TD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)));
  }
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  size_t ws_bytes = 0;
  void* ws = cublaslt_workspace(&ws_bytes);
  TD_CUBLAS_CHECK(cublasLtMatmul(cublaslt(), plan.desc, &alpha, w.data(), plan.a, x.data(), plan.b, &beta, y.data(),
                                 plan.c, y.data(), plan.c, &plan.algo, ws, ws_bytes, stream()));
  const bool gelu_done = ep == Epilogue::GeluTanh && linear_config::kUseCublasGelu && plan.fused_epilogue;
  const bool gelu_left = ep == Epilogue::GeluTanh && !gelu_done;
  if (!plan.fused_epilogue || gelu_left) {
    const Tensor* b = plan.fused_epilogue ? nullptr : bias;  // a fused plan already added the bias
    if (out_f32)
      launch_bias_act<float>(y, ry.ld, b, rx.M, N, gelu_left);
    else
      launch_bias_act<__nv_bfloat16>(y, ry.ld, b, rx.M, N, gelu_left);
  }
}

std::string linear_last_plan() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_last_how;
}

}  // namespace cuda
}  // namespace td
