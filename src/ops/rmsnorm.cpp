// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "cpu/rmsnorm.h"
#ifdef TD_WITH_CUDA
#include "cuda/rmsnorm.h"
#endif

#ifdef TD_WITH_CUDA
#define TD_CUDA_OR_FAIL(call, what) call
#else
#define TD_CUDA_OR_FAIL(call, what) fail(what, "is on cuda but this build has no CUDA backend")
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
