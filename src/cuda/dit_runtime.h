// CUDA pieces of the Wan DiT forward (src/model/dit): patchify/unpatchify on the device and a CUDA graph of the
// per-call work. Only compiled in CUDA builds; the
// DiT calls these under TD_WITH_CUDA.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/tensor.h"

namespace td {
namespace cuda {

// x: f32 [Cx, F, H, W], y: f32 [Cy, F, H, W] or undefined (both contiguous CUDA); patches: contiguous bf16
// [L = F*(H/2)*(W/2), (Cx+Cy)*4] with token n = (f, h, w) row-major and vector (c, kh, kw), as the Conv3d weight.
void dit_patchify(const Tensor& x, const Tensor* y, Tensor& patches);
// head: f32 [L, Co*4] (vector (kh, kw, c)); out: contiguous f32 CUDA [Co, F, H, W].
void dit_unpatchify(const Tensor& head, Tensor& out);

// One captured forward on td::cuda::stream(). capture() runs `body` under stream capture (relaxed mode, so the
// caching allocator may still cudaMalloc) with a device allocator pool that keeps every block freed during the
// capture for the graph's lifetime; replay() launches it. The body must have run eagerly once before (plans,
// kernel attributes and workspaces exist) and must not synchronise the host.
class DitGraph {
 public:
  DitGraph() = default;
  ~DitGraph();
  DitGraph(const DitGraph&) = delete;
  DitGraph& operator=(const DitGraph&) = delete;
  void capture(const std::function<void()>& body);
  void replay();
  bool ready() const { return exec_ != nullptr; }

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  int pool_ = 0;
};

}  // namespace cuda
}  // namespace td
