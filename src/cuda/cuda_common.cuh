// Shared CUDA plumbing: checked calls, the engine's stream and library handles, launch helpers.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "core/tensor.h"

#define TD_CUDA_CHECK(expr)                                                                                \
  do {                                                                                                     \
    cudaError_t err_ = (expr);                                                                             \
    if (err_ != cudaSuccess)                                                                               \
      throw ::td::Error(::td::cat("CUDA ", __FILE__, ":", __LINE__),                                     \
                        ::td::cat(#expr, " failed: ", cudaGetErrorString(err_),                           \
                                  err_ == cudaErrorMemoryAllocation                                       \
                                      ? " (out of GPU memory: try --offload or a smaller resolution)"     \
                                      : ""));                                                             \
  } while (0)

// After every kernel launch: catches bad launch configurations immediately (async faults surface at the next sync).
#define TD_CUDA_LAUNCH_CHECK() TD_CUDA_CHECK(cudaGetLastError())

#define TD_CUBLAS_CHECK(expr)                                                                     \
  do {                                                                                            \
    cublasStatus_t st_ = (expr);                                                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw ::td::Error(::td::cat("cuBLAS ", __FILE__, ":", __LINE__),                          \
                        ::td::cat(#expr, " failed: ", cublasGetStatusString(st_)));              \
  } while (0)

namespace td {
namespace cuda {

// The one stream all engine work runs on (a non-blocking stream, so CUDA graphs can capture it).
cudaStream_t stream();
cublasLtHandle_t cublaslt();
// Workspace for cuBLASLt (allocated once).
void* cublaslt_workspace(size_t* bytes);
const cudaDeviceProp& device_props();
inline int sm_count() { return device_props().multiProcessorCount; }
inline int cc() { return device_props().major * 10 + device_props().minor; }

inline unsigned ceil_div(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

// Requires a CUDA tensor; names it in the error.
inline void expect_cuda(const Tensor& t, const char* what) {
  TD_CHECK(t.defined() && t.is_cuda(), what, "expected a CUDA tensor, got ", t.defined() ? t.describe() : "none");
}

// An attention output in the ops::Int8Act form (attention_int8, sla_attention_int8): int8 codes [L, H * 128] and f32
// scales [L, H], contiguous on the device.
inline void expect_int8_attention_output(const Tensor& out_q, const Tensor& out_scale, int64_t L, int64_t H) {
  expect_cuda(out_q, "attention int8 output");
  expect_cuda(out_scale, "attention int8 scales");
  TD_CHECK(out_q.dtype() == DType::I8 && out_q.is_contiguous() && out_q.numel() == L * H * 128, "attention int8 output",
           "expected contiguous int8 with ", L * H * 128, " values, got ", out_q.describe());
  TD_CHECK(out_scale.dtype() == DType::F32 && out_scale.is_contiguous() && out_scale.numel() == L * H,
           "attention int8 scales", "expected contiguous f32 with ", L * H, " values, got ", out_scale.describe());
}

}  // namespace cuda
}  // namespace td
