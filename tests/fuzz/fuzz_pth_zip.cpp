// libFuzzer target: the whole .pth path (zip directory parsing, libzip reads, unpickling, zero-copy views) on
// arbitrary bytes written to a temporary file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/td_fuzz_pth_" + std::to_string(::getpid()) + ".pth";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    td::TensorMap m = td::load_pth(path);
    volatile uint8_t sink = 0;
    for (auto& kv : m.all()) {
      td::Tensor t = kv.second.contiguous();
      const uint8_t* p = static_cast<const uint8_t*>(t.data());
      if (t.nbytes()) sink ^= p[0] ^ p[t.nbytes() - 1];
    }
    (void)sink;
  } catch (const td::Error&) {
  }
  return 0;
}
