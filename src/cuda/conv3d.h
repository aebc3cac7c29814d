// CUDA conv3d (same semantics as td::cpu::conv3d, see cpu/conv3d.h): x, w, y bf16 channels-last, bias f32, fp32
// accumulation. Runs through cuDNN (NDHWC, tensor cores); TD_VAE_CONV=naive selects a slow direct kernel for
// debugging a cuDNN problem.
#pragma once

#include "core/tensor.h"
#include "cpu/conv3d.h"

namespace td {
namespace cuda {
void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate);
}  // namespace cuda
}  // namespace td
