#include "bench_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "core/allocator.h"
#include "core/error.h"
#ifdef TD_WITH_CUDA
#include "cuda/cuda_common.cuh"
#endif

namespace td {
namespace bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Tensor random_host(const Shape& shape, uint64_t seed, float stdev) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, stdev);
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = d(rng);
  return t;
}

void fill_random_device(Tensor& t, uint64_t seed, float stdev) {
  const int64_t block = std::min<int64_t>(t.numel(), int64_t(1) << 20);
  Tensor h = random_host({block}, seed, stdev);
  Tensor hc;
  if (t.dtype() == DType::I8) {
    hc = Tensor::empty({block}, DType::I8);
    for (int64_t i = 0; i < block; i++)
      hc.ptr<int8_t>()[i] = int8_t(std::max(-128.f, std::min(127.f, h.ptr<float>()[i] * 40.f)));
  } else {
    hc = h.to(t.dtype());
  }
  const size_t es = dtype_size(t.dtype());
  char* dst = static_cast<char*>(t.data());
  for (int64_t off = 0; off < t.numel(); off += block) {
    const int64_t n = std::min(block, t.numel() - off);
    device_memcpy(dst + off * es, hc.data(), size_t(n) * es, 0);
  }
}

Tensor random_device(const Shape& shape, DType dt, uint64_t seed, float stdev) {
  Tensor t = Tensor::empty(shape, dt, Device::CUDA);
  fill_random_device(t, seed, stdev);
  return t;
}

void flush_l2() {
#ifdef TD_WITH_CUDA
  if (!cuda_available()) return;
  static void* buf = nullptr;
  static size_t bytes = 0;
  if (!buf) {
    bytes = std::max<size_t>(size_t(cuda::device_props().l2CacheSize) * 4, size_t(64) << 20);
    buf = device_alloc(bytes);
  }
  TD_CUDA_CHECK(cudaMemsetAsync(buf, 0x5a, bytes, cuda::stream()));
#endif
}

Timing time_it(const std::function<void()>& fn, int warmup, int iters, bool device, bool flush) {
  Timing t;
  for (int i = 0; i < warmup; i++) fn();
#ifdef TD_WITH_CUDA
  if (device) {
    cudaEvent_t a, b;
    TD_CUDA_CHECK(cudaEventCreate(&a));
    TD_CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < iters; i++) {
      if (flush) flush_l2();
      TD_CUDA_CHECK(cudaEventRecord(a, cuda::stream()));
      fn();
      TD_CUDA_CHECK(cudaEventRecord(b, cuda::stream()));
      TD_CUDA_CHECK(cudaEventSynchronize(b));
      float ms = 0;
      TD_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
      t.ms.push_back(ms);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
#endif
  if (!device) {
    for (int i = 0; i < iters; i++) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      auto t1 = std::chrono::steady_clock::now();
      t.ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  TD_CHECK(!t.ms.empty(), "--iters", "need at least one timed iteration (device timing needs a CUDA build)");
  t.median_ms = median(t.ms);
  t.min_ms = *std::min_element(t.ms.begin(), t.ms.end());
  t.max_ms = *std::max_element(t.ms.begin(), t.ms.end());
  return t;
}

#ifdef TD_WITH_CUDA
struct EventSpans::Impl {
  struct Span {
    int slot;
    cudaEvent_t a, b;
  };
  int slots;
  std::vector<Span> spans;         // recorded, not yet summed
  std::vector<cudaEvent_t> pool;   // reusable events
  std::vector<int> open;           // per slot: index into spans of the open span, -1 if none
  std::vector<int> depth;          // per slot: nesting depth (only the outermost begin/end pair is recorded)
  std::vector<double> total;       // per slot, ms already summed
  cudaEvent_t get() {
    if (pool.empty()) {
      cudaEvent_t e;
      TD_CUDA_CHECK(cudaEventCreate(&e));
      return e;
    }
    cudaEvent_t e = pool.back();
    pool.pop_back();
    return e;
  }
};

EventSpans::EventSpans(int slots) : impl_(new Impl) {
  impl_->slots = slots;
  impl_->open.assign(slots, -1);
  impl_->depth.assign(slots, 0);
  impl_->total.assign(slots, 0.0);
}

EventSpans::~EventSpans() {
  for (auto& s : impl_->spans) {
    cudaEventDestroy(s.a);
    cudaEventDestroy(s.b);
  }
  for (auto e : impl_->pool) cudaEventDestroy(e);
  delete impl_;
}

void EventSpans::begin(int slot) {
  TD_ASSERT(slot >= 0 && slot < impl_->slots, "bad span slot ", slot);
  if (impl_->depth[slot]++ > 0) return;
  Impl::Span s{slot, impl_->get(), impl_->get()};
  TD_CUDA_CHECK(cudaEventRecord(s.a, cuda::stream()));
  impl_->open[slot] = int(impl_->spans.size());
  impl_->spans.push_back(s);
}

void EventSpans::end(int slot) {
  TD_ASSERT(slot >= 0 && slot < impl_->slots && impl_->depth[slot] > 0, "span end without begin ", slot);
  if (--impl_->depth[slot] > 0) return;
  TD_CUDA_CHECK(cudaEventRecord(impl_->spans[impl_->open[slot]].b, cuda::stream()));
  impl_->open[slot] = -1;
}

double EventSpans::total_ms(int slot) {
  for (int o : impl_->open) TD_ASSERT(o < 0, "EventSpans::total_ms with an open span");
  if (!impl_->spans.empty()) {
    TD_CUDA_CHECK(cudaEventSynchronize(impl_->spans.back().b));
    for (Impl::Span& s : impl_->spans) {
      float ms = 0;
      TD_CUDA_CHECK(cudaEventElapsedTime(&ms, s.a, s.b));
      impl_->total[s.slot] += ms;
      impl_->pool.push_back(s.a);
      impl_->pool.push_back(s.b);
    }
    impl_->spans.clear();
  }
  return impl_->total[slot];
}

void EventSpans::reset() {
  total_ms(0);
  for (double& v : impl_->total) v = 0;
}

std::string device_description() {
  if (!cuda_available()) return "cpu (no CUDA device)";
  const cudaDeviceProp& p = cuda::device_props();
  return cat(p.name, " (", p.multiProcessorCount, " SMs, sm_", p.major, p.minor, ", ", p.totalGlobalMem >> 30,
             " GiB)");
}
#else
struct EventSpans::Impl {};
EventSpans::EventSpans(int) : impl_(nullptr) {}
EventSpans::~EventSpans() {}
void EventSpans::begin(int) { fail("bench", "GPU event timing needs a CUDA build"); }
void EventSpans::end(int) {}
double EventSpans::total_ms(int) { return 0; }
void EventSpans::reset() {}
std::string device_description() { return "cpu (built without CUDA)"; }
#endif

size_t peak_device_bytes() { return device_peak_bytes(); }
void reset_peak_device_bytes() { device_reset_peak(); }

std::string fmt_bytes(size_t bytes) {
  char buf[64];
  if (bytes >= (size_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1 << 20));
  return buf;
}

}  // namespace bench
}  // namespace td
