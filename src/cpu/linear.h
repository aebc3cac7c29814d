// CPU fp32 linear (see ops::linear in ops/ops.h for semantics). td::cuda::linear has the same signature.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep);

}  // namespace cpu
}  // namespace td
