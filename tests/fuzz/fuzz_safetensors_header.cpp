// libFuzzer target: the safetensors header parser on arbitrary bytes (a whole "file").
// Any outcome other than success or td::Error (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::map<std::string, std::string> meta;
    size_t start = 0;
    auto entries = td::parse_safetensors_header(data, size, "fuzz.safetensors", &meta, &start);
    // Every accepted entry must lie inside the buffer: touch its first and last byte.
    volatile uint8_t sink = 0;
    for (auto& e : entries) {
      if (e.end > e.begin) sink ^= data[start + e.begin] ^ data[start + e.end - 1];
    }
    (void)sink;
  } catch (const td::Error&) {
  }
  return 0;
}
