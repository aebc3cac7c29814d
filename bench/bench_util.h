// Shared timing helpers for `turbodiff bench <case>`: warm-up, CUDA-event (or host) timing, medians, L2 flush, peak
// device memory. Plain C++ (no CUDA headers) so bench files compile in CPU-only builds too.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace td {
namespace bench {

struct Timing {
  std::vector<double> ms;  // one per timed iteration
  double median_ms = 0, min_ms = 0, max_ms = 0;
};

double median(std::vector<double> v);

// Runs fn `warmup` times, then `iters` times, timing each run: with CUDA events on the engine stream when
// `device` (GPU time of the work fn enqueues), else with a steady clock. With flush_l2, a buffer larger than the
// L2 cache is overwritten before each timed run (outside the timed region) so inputs come from HBM.
Timing time_it(const std::function<void()>& fn, int warmup, int iters, bool device, bool flush_l2 = false);

// Overwrites a device buffer larger than L2 (no-op without CUDA).
void flush_l2();

// Records event pairs on the engine stream and sums the GPU time between begin/end per slot (e.g. per op kind)
// without synchronising in between. Nested begin/end of the same slot count once (the outermost pair); spans of
// different slots may overlap and are then counted in both. total_ms() synchronises.
class EventSpans {
 public:
  explicit EventSpans(int slots);
  ~EventSpans();
  EventSpans(const EventSpans&) = delete;
  EventSpans& operator=(const EventSpans&) = delete;
  void begin(int slot);
  void end(int slot);
  // Sum of the spans of `slot` so far, in ms (synchronises on the last event).
  double total_ms(int slot);
  void reset();

 private:
  struct Impl;
  Impl* impl_;
};

// Host f32 tensor of N(0, stdev) values from a seeded mt19937_64 (benchmark inputs; deterministic per seed).
Tensor random_host(const Shape& shape, uint64_t seed, float stdev = 1.f);
// Fills a device tensor with N(0, stdev) values converted to its dtype (I8: value * 40, saturated) by tiling one
// 1M-element random block over the buffer, which is cheap for GiB-sized operands.
void fill_random_device(Tensor& t, uint64_t seed, float stdev = 1.f);
Tensor random_device(const Shape& shape, DType dt, uint64_t seed, float stdev = 1.f);

size_t peak_device_bytes();  // td::device_peak_bytes()
void reset_peak_device_bytes();
std::string fmt_bytes(size_t bytes);  // "4.61 GiB"
std::string device_description();     // "NVIDIA H100 80GB HBM3 (132 SMs, sm_90)" or "cpu"

}  // namespace bench
}  // namespace td
