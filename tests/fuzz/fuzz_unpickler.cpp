// libFuzzer target: the restricted unpickler on arbitrary bytes (a data.pkl). Storages resolve to a zeroed buffer,
// so the fuzzer explores opcode handling, tensor rebuilding and bounds checks without a zip around it.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<unsigned char> zeros(1 << 16, 0);
  td::StorageResolver resolve = [](const std::string& key, size_t nbytes) -> td::PickleStorage {
    if (nbytes > zeros.size()) td::fail("fuzz", "storage too large for the fuzz buffer");
    // Hand out exactly what was asked for so ASan sees any read past it.
    return td::PickleStorage{zeros.data() + (zeros.size() - nbytes), nbytes, nullptr};
  };
  try {
    td::TensorMap m = td::parse_state_dict_pickle(data, size, "fuzz.pkl", resolve);
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
