// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/rope3d.h"
#ifdef TD_WITH_CUDA
#include "cuda/rope3d.h"
#endif

namespace td {
namespace ops {

void rope3d(Tensor& x, int frames, int height, int width, float theta) {
  if (x.is_cuda())
    TD_CUDA_OR_FAIL(cuda::rope3d(x, frames, height, width, theta), "rope3d input");
  else
    cpu::rope3d(x, frames, height, width, theta);
}

}  // namespace ops
}  // namespace td
