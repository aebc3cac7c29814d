// PyTorch checkpoints written by torch.save (zip format, protocol 2 pickle in "<archive>/data.pkl", tensor storages
// in "<archive>/data/<key>"). Read with a bounds-checked zip reader (libzip for compressed entries) and a restricted
// unpickler: only what a state dict needs is understood (dict/OrderedDict, torch._utils._rebuild_tensor_v2/_v3,
// _rebuild_parameter[_with_state], torch.*Storage / UntypedStorage for numeric dtypes, torch dtypes); any other
// global, or an opcode that could construct arbitrary objects, raises td::Error naming the file. Nothing read is
// ever run.
//
// The result is flat: nested dicts become '.'-joined names ({"net": sd} gives "net.<key>"); when the root holds a
// "state_dict" or "model_state_dict" dict (training checkpoints, next to optimizer state), only that one is read.
// Non-tensor leaves (epoch counters, strings, lists) are skipped.
// Stored, aligned, contiguous tensors borrow the mmapped file (zero-copy); the rest are copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "io/tensor_map.h"

namespace td {

TensorMap load_pth(const std::string& path);

// Raw bytes of one storage: `data[0, bytes)` stays valid as long as `keepalive` (may be null for static memory).
struct PickleStorage {
  const unsigned char* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<void> keepalive;
};
// Resolves a persistent storage reference ('storage', type, key, location, numel) to at least `nbytes` bytes, or
// raises td::Error.
using StorageResolver = std::function<PickleStorage(const std::string& key, size_t nbytes)>;

// Parses a pickle byte string (a torch.save data.pkl) into a flat state dict. Exposed for tests and the fuzz
// target. td::Error naming `source` on anything malformed or not allowed.
TensorMap parse_state_dict_pickle(const unsigned char* data, size_t size, const std::string& source,
                                  const StorageResolver& resolve);

}  // namespace td
