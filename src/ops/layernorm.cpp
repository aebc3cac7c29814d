// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/layernorm.h"
#ifdef TD_WITH_CUDA
#include "cuda/layernorm.h"
#endif

namespace td {
namespace ops {

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y) {
  if (y.is_cuda())
    TD_CUDA_OR_FAIL(cuda::layernorm_modulate(x, shift, scale, eps, y), "layernorm_modulate output");
  else
    cpu::layernorm_modulate(x, shift, scale, eps, y);
}

void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y) {
  if (y.is_cuda())
    TD_CUDA_OR_FAIL(cuda::layernorm(x, weight, bias, eps, y), "layernorm output");
  else
    cpu::layernorm(x, weight, bias, eps, y);
}

void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h) {
  if (h.is_cuda())
    TD_CUDA_OR_FAIL(cuda::residual_layernorm(x, y, gate, mul, add, modulate, eps, h), "residual_layernorm output");
  else
    cpu::residual_layernorm(x, y, gate, mul, add, modulate, eps, h);
}

}  // namespace ops
}  // namespace td
