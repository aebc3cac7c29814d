// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/residual.h"
#ifdef TD_WITH_CUDA
#include "cuda/residual.h"
#endif

namespace td {
namespace ops {

void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::gated_residual(x, y, gate), "gated_residual stream");
  else
    cpu::gated_residual(x, y, gate);
}

void add_residual(Tensor& x, const Tensor& y) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::add_residual(x, y), "add_residual stream");
  else
    cpu::add_residual(x, y);
}

}  // namespace ops
}  // namespace td
