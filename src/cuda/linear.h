// CUDA backend of ops::linear (see src/ops/ops.h): cuBLASLt bf16 GEMM with fp32 accumulation.
#pragma once

#include <string>

#include "ops/ops.h"

namespace td {
namespace cuda {

// y[M,N] = x[M,K] · w[N,K]^T (+ bias[N]) then the epilogue. x, w bf16 (x may be a row-strided 2-D view, or any
// contiguous tensor whose last dim is K); bias bf16 or f32; y bf16 or f32 with y's rows matching x's. With
// accumulate, y += x · w^T (+ bias) (no activation epilogue then).
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep = Epilogue::None,
            bool accumulate = false);

// How the most recently planned shape runs (fused epilogue or not, bias copy, autotune pick), for bench output.
std::string linear_last_plan();

}  // namespace cuda
}  // namespace td
