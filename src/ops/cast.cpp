// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/cast.h"
#ifdef TD_WITH_CUDA
#include "cuda/cast.h"
#endif

namespace td {
namespace ops {

void cast(const Tensor& src, Tensor& dst) {
  if (dst.is_cuda() || src.is_cuda()) {
    TD_CHECK(dst.device() == src.device(), "cast", "source ", src.describe(), " and destination ", dst.describe(),
             " are on different devices");
    TD_CUDA_OR_FAIL(cuda::cast(src, dst), "cast output");
  } else {
    cpu::cast(src, dst);
  }
}

}  // namespace ops
}  // namespace td
