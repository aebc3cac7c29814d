// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/rmsnorm.h"
#ifdef TD_WITH_CUDA
#include "cuda/rmsnorm.h"
#endif

namespace td {
namespace ops {

void rmsnorm(Tensor& x, const Tensor& weight, float eps) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::rmsnorm(x, weight, eps), "rmsnorm input");
  else
    cpu::rmsnorm(x, weight, eps);
}

}  // namespace ops
}  // namespace td
