// Small checks shared by the CPU ops: every CPU op works on host f32 tensors with a contiguous last dim.
#pragma once

#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace td {
namespace cpu {
namespace detail {

inline void expect_host_f32(const Tensor& t, const char* op, const char* what) {
  TD_CHECK(t.defined(), cat(op, " ", what), "tensor is undefined");
  TD_CHECK(!t.is_cuda(), cat(op, " ", what), t.describe(), " is on cuda; the CPU op needs host tensors");
  TD_CHECK(t.dtype() == DType::F32, cat(op, " ", what), t.describe(), ": the CPU op needs f32");
}

inline void expect_contiguous(const Tensor& t, const char* op, const char* what) {
  TD_CHECK(t.is_contiguous(), cat(op, " ", what), t.describe(), " must be contiguous");
}

// Treats a contiguous tensor as [rows, last-dim].
inline int64_t rows_of(const Tensor& t) { return t.dim() ? t.numel() / t.size(-1) : 1; }

}  // namespace detail
}  // namespace cpu
}  // namespace td
