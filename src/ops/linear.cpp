// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/linear.h"
#ifdef TD_WITH_CUDA
#include "cuda/linear.h"
#endif

namespace td {
namespace ops {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep) {
  if (y.is_cuda())
    TD_CUDA_OR_FAIL(cuda::linear(x, w, bias, y, ep), "linear output");
  else
    cpu::linear(x, w, bias, y, ep);
}

}  // namespace ops
}  // namespace td
