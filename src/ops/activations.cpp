// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/activations.h"
#ifdef TD_WITH_CUDA
#include "cuda/activations.h"
#endif

namespace td {
namespace ops {

void silu(Tensor& x) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::silu(x), "silu input");
  else
    cpu::silu(x);
}

void gelu_tanh(Tensor& x) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::gelu_tanh(x), "gelu_tanh input");
  else
    cpu::gelu_tanh(x);
}

}  // namespace ops
}  // namespace td
