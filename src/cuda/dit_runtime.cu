// CUDA pieces of the Wan DiT forward: device patchify/unpatchify, the captured-forward holder and the block weight
// streamer. See dit_runtime.h.
#include "cuda/dit_runtime.h"

#include <cstring>

#include "core/allocator.h"
#include "core/device_pool.h"
#include "cuda/cuda_common.cuh"

namespace td {
namespace cuda {

namespace {

// Both permutations are a few MB per forward: one thread per output element, 64-bit indices (81-frame 720p latents
// stay far below 2^31, but the guard costs nothing).
__global__ void patchify_kernel(const float* __restrict__ x, const float* __restrict__ y, int Cx, int F, int H, int W,
                                int Cin, __nv_bfloat16* __restrict__ out, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int Hp = H / 2, Wp = W / 2, row = Cin * 4;
  const int64_t n = i / row;
  const int r = int(i % row);
  const int c = r >> 2, kh = (r >> 1) & 1, kw = r & 1;
  const int ww = int(n % Wp), hh = int((n / Wp) % Hp), f = int(n / (int64_t(Wp) * Hp));
  const float* plane = c < Cx ? x + (int64_t(c) * F + f) * H * W : y + (int64_t(c - Cx) * F + f) * H * W;
  out[i] = __float2bfloat16_rn(plane[int64_t(2 * hh + kh) * W + 2 * ww + kw]);
}

__global__ void unpatchify_kernel(const float* __restrict__ head, int Co, int F, int H, int W, float* __restrict__ out,
                                  int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int w = int(i % W), h = int((i / W) % H), f = int((i / (int64_t(W) * H)) % F);
  const int c = int(i / (int64_t(W) * H * F));
  const int Hp = H / 2, Wp = W / 2;
  const int64_t n = (int64_t(f) * Hp + h / 2) * Wp + w / 2;
  out[i] = head[n * Co * 4 + ((h & 1) * 2 + (w & 1)) * Co + c];
}

void check_f32_grid(const Tensor& t, const char* what) {
  expect_cuda(t, what);
  TD_CHECK(t.dtype() == DType::F32 && t.dim() == 4 && t.is_contiguous(), what,
           "expected a contiguous f32 [C, F, H, W] CUDA tensor, got ", t.describe());
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

}  // namespace

void dit_patchify(const Tensor& x, const Tensor* y, Tensor& patches) {
  check_f32_grid(x, "dit x");
  const int64_t Cx = x.size(0), F = x.size(1), H = x.size(2), W = x.size(3);
  int64_t Cy = 0;
  if (y && y->defined()) {
    check_f32_grid(*y, "dit y");
    TD_CHECK(y->size(1) == F && y->size(2) == H && y->size(3) == W, "dit y", "grid ", shape_str(y->shape()),
             " differs from x ", shape_str(x.shape()));
    Cy = y->size(0);
  }
  TD_CHECK(H % 2 == 0 && W % 2 == 0, "dit x", "height and width must be even, got ", shape_str(x.shape()));
  const int64_t L = F * (H / 2) * (W / 2), Cin = Cx + Cy;
  expect_cuda(patches, "dit patches");
  TD_CHECK(patches.dtype() == DType::BF16 && patches.is_contiguous() && patches.shape() == Shape({L, Cin * 4}),
           "dit patches", "expected contiguous bf16 [", L, ", ", Cin * 4, "], got ", patches.describe());
  const int64_t total = L * Cin * 4;
  if (total == 0) return;
  patchify_kernel<<<ceil_div(total, 256), 256, 0, stream()>>>(
      x.ptr<float>(), Cy ? y->ptr<float>() : nullptr, int(Cx), int(F), int(H), int(W), int(Cin),
      patches.ptr<__nv_bfloat16>(), total);
  TD_CUDA_LAUNCH_CHECK();
}

void dit_unpatchify(const Tensor& head, Tensor& out) {
  check_f32_grid(out, "dit output");
  const int64_t Co = out.size(0), F = out.size(1), H = out.size(2), W = out.size(3);
  expect_cuda(head, "dit head output");
  TD_CHECK(H % 2 == 0 && W % 2 == 0, "dit output", "height and width must be even");
  TD_CHECK(head.dtype() == DType::F32 && head.is_contiguous() && head.shape() == Shape({F * (H / 2) * (W / 2), Co * 4}),
           "dit head output", "expected contiguous f32 [", F * (H / 2) * (W / 2), ", ", Co * 4, "], got ",
           head.describe());
  const int64_t total = Co * F * H * W;
  if (total == 0) return;
  unpatchify_kernel<<<ceil_div(total, 256), 256, 0, stream()>>>(head.ptr<float>(), int(Co), int(F), int(H), int(W),
                                                                out.ptr<float>(), total);
  TD_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------------------------------------------

DitGraph::~DitGraph() {
  // Destruction must not throw; a failing call here leaves nothing better to do.
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  // The pool's blocks return to the cache; later users are ordered after any in-flight replay by the one stream.
  if (pool_) device_pool_release(pool_);
}

void DitGraph::capture(const std::function<void()>& body) {
  TD_CHECK(!exec_ && !pool_, "cuda graph", "already captured");
  pool_ = device_pool_begin();
  TD_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  try {
    body();
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream(), &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
    device_pool_end();
    throw;
  }
  cudaGraph_t g = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream(), &g);
  device_pool_end();
  TD_CUDA_CHECK(err);
  graph_ = g;
  cudaGraphExec_t e = nullptr;
  TD_CUDA_CHECK(cudaGraphInstantiate(&e, g, 0));
  exec_ = e;
}

void DitGraph::replay() {
  TD_CHECK(exec_, "cuda graph", "replay before capture");
  TD_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream()));
}

// ---------------------------------------------------------------------------------------------------------------

DitOffloader::DitOffloader(int num_blocks, const std::function<std::vector<Tensor*>(int)>& tensors_of) : n_(num_blocks) {
  TD_CHECK(n_ > 0, "--offload", "no blocks to stream");
  // Layout from block 0: 256-byte aligned offsets (vectorised kernels and cuBLASLt want aligned operands).
  std::vector<Tensor*> t0 = tensors_of(0);
  std::vector<size_t> offs;
  size_t off = 0;
  for (Tensor* t : t0) {
    TD_CHECK(t->defined() && t->is_contiguous(), "--offload", "block tensor ", t->describe(), " is not packable");
    offs.push_back(off);
    off += (t->nbytes() + 255) & ~size_t(255);
  }
  block_bytes_ = off;
  TD_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&pinned_), size_t(n_) * block_bytes_, cudaHostAllocDefault));
  for (int i = 0; i < n_; i++) {
    std::vector<Tensor*> ti = tensors_of(i);
    TD_CHECK(ti.size() == t0.size(), "--offload", "block ", i, " has a different set of tensors than block 0");
    char* base = pinned_ + size_t(i) * block_bytes_;
    for (size_t k = 0; k < ti.size(); k++) {
      const Tensor& t = *ti[k];
      TD_CHECK(t.shape() == t0[k]->shape() && t.dtype() == t0[k]->dtype(), "--offload", "block ", i, " tensor ",
               t.describe(), " differs from block 0's ", t0[k]->describe());
      const Tensor h = t.to(Device::CPU).contiguous();
      std::memcpy(base + offs[k], h.data(), h.nbytes());
    }
  }
  for (Slot& s : slots_) {
    s.storage = Tensor::empty({int64_t(block_bytes_)}, DType::I8, Device::CUDA);
    for (size_t k = 0; k < t0.size(); k++)
      s.views.push_back(Tensor::borrow(static_cast<char*>(s.storage.data()) + offs[k], t0[k]->shape(),
                                       t0[k]->dtype(), Device::CUDA, s.storage.storage())
                            .set_name(t0[k]->name()));
    cudaEvent_t a, b;
    TD_CUDA_CHECK(cudaEventCreateWithFlags(&a, cudaEventDisableTiming));
    s.copied = a;
    TD_CUDA_CHECK(cudaEventCreateWithFlags(&b, cudaEventDisableTiming));
    s.used = b;
  }
  cudaStream_t cs;
  TD_CUDA_CHECK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  copy_stream_ = cs;
  cudaEvent_t st;
  TD_CUDA_CHECK(cudaEventCreateWithFlags(&st, cudaEventDisableTiming));
  start_ = st;
}

DitOffloader::~DitOffloader() {
  // Copies may still be in flight into the slots: wait before the slots go back to the cache.
  if (copy_stream_) cudaStreamSynchronize(as_stream(copy_stream_));
  cudaStreamSynchronize(stream());
  for (Slot& s : slots_) {
    if (s.copied) cudaEventDestroy(as_event(s.copied));
    if (s.used) cudaEventDestroy(as_event(s.used));
  }
  if (start_) cudaEventDestroy(as_event(start_));
  if (copy_stream_) cudaStreamDestroy(as_stream(copy_stream_));
  if (pinned_) cudaFreeHost(pinned_);
}

void DitOffloader::upload(int i) {
  Slot& s = slots_[i % 2];
  TD_CUDA_CHECK(cudaMemcpyAsync(s.storage.data(), pinned_ + size_t(i) * block_bytes_, block_bytes_,
                                cudaMemcpyHostToDevice, as_stream(copy_stream_)));
  TD_CUDA_CHECK(cudaEventRecord(as_event(s.copied), as_stream(copy_stream_)));
}

void DitOffloader::begin() {
  // Both slots may still be read by the previous forward's last blocks: the copy stream starts after them.
  TD_CUDA_CHECK(cudaEventRecord(as_event(start_), stream()));
  TD_CUDA_CHECK(cudaStreamWaitEvent(as_stream(copy_stream_), as_event(start_), 0));
  upload(0);
}

int DitOffloader::acquire(int i) {
  TD_CHECK(i >= 0 && i < n_, "--offload", "block ", i, " out of range");
  if (i + 1 < n_) {
    // Block i+1 goes where block i-1 was: wait for its last reader (block 0's slot-1 predecessor is `start_`).
    if (i >= 1) TD_CUDA_CHECK(cudaStreamWaitEvent(as_stream(copy_stream_), as_event(slots_[(i + 1) % 2].used), 0));
    upload(i + 1);
  }
  TD_CUDA_CHECK(cudaStreamWaitEvent(stream(), as_event(slots_[i % 2].copied), 0));
  return i % 2;
}

void DitOffloader::release(int i) { TD_CUDA_CHECK(cudaEventRecord(as_event(slots_[i % 2].used), stream())); }

}  // namespace cuda
}  // namespace td
