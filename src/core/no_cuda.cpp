// Device memory entry points for a CPU-only build: every request names the missing backend.
#include "core/allocator.h"
#include "core/device_pool.h"
#include "core/error.h"

namespace td {

bool cuda_available() { return false; }
void* device_alloc(size_t) { fail("--device cuda", "this turbodiff was built without CUDA"); }
void device_free(void*, size_t) {}
void device_empty_cache() {}
size_t device_bytes_in_use() { return 0; }
size_t device_peak_bytes() { return 0; }
void device_reset_peak() {}
void device_memcpy(void*, const void*, size_t, int) { fail("--device cuda", "this turbodiff was built without CUDA"); }
void device_synchronize() {}
int device_pool_begin() { return 0; }
void device_pool_end() {}
void device_pool_release(int) {}

}  // namespace td
