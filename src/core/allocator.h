// Memory allocation.
//
// Host: 64-byte aligned malloc. Device: a caching allocator (size-class free lists) so the forward pass never calls
// cudaMalloc once warmed up; it also tracks current and peak usage for the memory reports benchmarks print.
// The device side is implemented in src/cuda/device_allocator.cu; in a CPU-only build device requests fail cleanly.
#pragma once

#include <cstddef>

namespace td {

void* host_alloc(size_t bytes);
void host_free(void* p, size_t bytes);

bool cuda_available();  // a CUDA build and at least one device present
void* device_alloc(size_t bytes);
void device_free(void* p, size_t bytes);  // returns the block to the cache (stream-ordered on the default stream)
void device_empty_cache();                // gives cached blocks back to the driver
size_t device_bytes_in_use();
size_t device_peak_bytes();               // high-water mark of bytes held by live tensors + cache
void device_reset_peak();

// Device copies; implemented next to the allocator. kind: 0 h2d, 1 d2h, 2 d2d.
void device_memcpy(void* dst, const void* src, size_t bytes, int kind);
void device_synchronize();

}  // namespace td
