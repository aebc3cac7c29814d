// Caching device allocator. Sizes are rounded to classes (512 B granularity below 1 MiB, 2 MiB above) and freed
// blocks go to per-class free lists. All work runs on one stream, so a block freed by the host can be reused by the
// next allocation without events: stream order guarantees earlier kernels finished with it first.
#include <map>
#include <mutex>

#include "core/allocator.h"
#include "core/device_pool.h"
#include "cuda/cuda_common.cuh"

namespace td {

namespace {

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // size class -> block
  std::map<void*, size_t> sizes;             // block -> size class (all blocks we own)
  size_t in_use = 0, cached = 0, peak = 0;
  std::map<int, std::multimap<size_t, void*>> pools;  // capture pools (blocks counted as cached)
  int active_pool = 0, next_pool = 1;                  // 0: none active
};

Cache& cache() {
  static Cache* c = new Cache();  // leaked on purpose: outlives static tensors at exit
  return *c;
}

size_t size_class(size_t bytes) {
  if (bytes < (1u << 20)) return (bytes + 511) & ~size_t(511);
  return (bytes + (2u << 20) - 1) & ~size_t((2u << 20) - 1);
}

}  // namespace

bool cuda_available() {
  static int n = -1;
  if (n < 0) {
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      n = 0;
      cudaGetLastError();
    }
  }
  return n > 0;
}

void* device_alloc(size_t bytes) {
  TD_CHECK(cuda_available(), "--device cuda", "no CUDA device found");
  Cache& c = cache();
  size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lk(c.mu);
  if (c.active_pool) {
    auto& pool = c.pools[c.active_pool];
    auto pit = pool.lower_bound(cls);
    if (pit != pool.end() && pit->first <= cls * 2) {
      void* p = pit->second;
      c.cached -= pit->first;
      c.in_use += pit->first;
      pool.erase(pit);
      return p;
    }
  }
  // Reuse a cached block of the same class, or a larger one up to 2x (keeps fragmentation bounded).
  auto it = c.free_blocks.lower_bound(cls);
  if (it != c.free_blocks.end() && it->first <= cls * 2) {
    void* p = it->second;
    c.cached -= it->first;
    c.in_use += it->first;
    c.free_blocks.erase(it);
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, cls);
  if (err != cudaSuccess) {
    cudaGetLastError();
    // Give the cache back and try once more before reporting.
    for (auto& kv : c.free_blocks) {
      cudaFree(kv.second);
      c.sizes.erase(kv.second);
    }
    c.free_blocks.clear();
    c.cached = 0;
    err = cudaMalloc(&p, cls);
    if (err != cudaSuccess) {
      cudaGetLastError();
      fail("GPU memory", cat("out of GPU memory allocating ", cls >> 20, " MiB (", c.in_use >> 20,
                             " MiB in use); try --offload, --tile, or a smaller resolution"));
    }
  }
  c.sizes[p] = cls;
  c.in_use += cls;
  if (c.in_use + c.cached > c.peak) c.peak = c.in_use + c.cached;
  return p;
}

void device_free(void* p, size_t) {
  if (!p) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  auto it = c.sizes.find(p);
  if (it == c.sizes.end()) return;
  c.in_use -= it->second;
  c.cached += it->second;
  if (c.active_pool)
    c.pools[c.active_pool].emplace(it->second, p);
  else
    c.free_blocks.emplace(it->second, p);
}

int device_pool_begin() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  TD_CHECK(c.active_pool == 0, "device allocator", "capture pools do not nest");
  c.active_pool = c.next_pool++;
  c.pools[c.active_pool];
  return c.active_pool;
}

void device_pool_end() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  c.active_pool = 0;
}

void device_pool_release(int id) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  auto it = c.pools.find(id);
  if (it == c.pools.end()) return;
  if (c.active_pool == id) c.active_pool = 0;
  for (auto& kv : it->second) c.free_blocks.emplace(kv.first, kv.second);
  c.pools.erase(it);
}

void device_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  cudaStreamSynchronize(cuda::stream());
  for (auto& kv : c.free_blocks) {
    cudaFree(kv.second);
    c.sizes.erase(kv.second);
  }
  c.free_blocks.clear();
  c.cached = 0;
}

size_t device_bytes_in_use() { return cache().in_use; }
size_t device_peak_bytes() { return cache().peak; }
void device_reset_peak() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  c.peak = c.in_use + c.cached;
}

void device_memcpy(void* dst, const void* src, size_t bytes, int kind) {
  static const cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice};
  TD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kinds[kind], cuda::stream()));
  // Host-visible results (and pageable host sources) need the copy finished before returning.
  if (kind != 2) TD_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void device_synchronize() { TD_CUDA_CHECK(cudaStreamSynchronize(cuda::stream())); }

namespace cuda {

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st;
    TD_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasLtHandle_t cublaslt() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t hh;
    TD_CUBLAS_CHECK(cublasLtCreate(&hh));
    return hh;
  }();
  return h;
}

void* cublaslt_workspace(size_t* bytes) {
  static constexpr size_t kBytes = 64u << 20;  // Hopper cuBLASLt kernels want up to 32 MiB; keep headroom
  static void* ws = [] {
    void* p = nullptr;
    TD_CUDA_CHECK(cudaMalloc(&p, kBytes));
    return p;
  }();
  *bytes = kBytes;
  return ws;
}

const cudaDeviceProp& device_props() {
  static cudaDeviceProp p = [] {
    cudaDeviceProp pp;
    int dev = 0;
    TD_CUDA_CHECK(cudaGetDevice(&dev));
    TD_CUDA_CHECK(cudaGetDeviceProperties(&pp, dev));
    return pp;
  }();
  return p;
}

}  // namespace cuda
}  // namespace td
