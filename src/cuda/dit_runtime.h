// CUDA pieces of the Wan DiT forward (src/model/dit): patchify/unpatchify on the device, a CUDA graph of the
// per-call work, and block weight streaming from pinned host memory (--offload). Only compiled in CUDA builds; the
// DiT calls these under TD_WITH_CUDA.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

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

// Streams per-block weights from pinned host memory into two device slots on a second stream: the copy of block
// i+1 overlaps the compute of block i; events order copy-after-use and use-after-copy. All blocks share one layout
// (the same tensor shapes), so a slot is described once by `layout` (the tensors of one block, as views into the
// slot) and a block is one contiguous copy.
class DitOffloader {
 public:
  // `tensors_of(i)` lists block i's device tensors (host-resident at this point) in a fixed order; every block
  // must list the same shapes and dtypes. Packs them into pinned memory (the caller drops the host tensors
  // afterwards) and allocates the two slots.
  DitOffloader(int num_blocks, const std::function<std::vector<Tensor*>(int)>& tensors_of);
  ~DitOffloader();
  DitOffloader(const DitOffloader&) = delete;
  DitOffloader& operator=(const DitOffloader&) = delete;

  // Device views of slot s's tensors, in the order `tensors_of` lists them.
  const std::vector<Tensor>& slot_tensors(int s) const { return slots_[size_t(s)].views; }
  size_t block_bytes() const { return block_bytes_; }
  size_t device_bytes() const { return 2 * block_bytes_; }

  // Forward protocol: begin() before block 0, then acquire(i) (returns the slot holding block i, ready for use on
  // the compute stream) and release(i) after block i's kernels were enqueued.
  void begin();
  int acquire(int i);
  void release(int i);

 private:
  void upload(int i);
  struct Slot {
    Tensor storage;            // i8 [block_bytes] on the device
    std::vector<Tensor> views;
    void* copied = nullptr;    // cudaEvent_t: upload into the slot done (copy stream)
    void* used = nullptr;      // cudaEvent_t: last reader of the slot done (compute stream)
  };
  int n_ = 0;
  size_t block_bytes_ = 0;
  char* pinned_ = nullptr;  // n_ * block_bytes_
  Slot slots_[2];
  void* copy_stream_ = nullptr;
  void* start_ = nullptr;   // cudaEvent_t: the compute stream reached the forward (slots' previous readers done)
};

}  // namespace cuda
}  // namespace td
