#include <cstdlib>
#include <new>

#include "core/allocator.h"
#include "core/error.h"

namespace td {

void* host_alloc(size_t bytes) {
  // 64-byte alignment: AVX-512 loads and cache lines.
  size_t rounded = (bytes + 63) & ~size_t(63);
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) fail("host memory", cat("out of host memory allocating ", bytes, " bytes"));
  return p;
}

void host_free(void* p, size_t) { std::free(p); }

}  // namespace td
