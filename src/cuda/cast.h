// CUDA backend of ops::cast: dtype conversion between f32, bf16 and f16 on the device.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// dst = src converted; same shape, both CUDA and contiguous.
void cast(const Tensor& src, Tensor& dst);

}  // namespace cuda
}  // namespace td
