// PyTorch checkpoints written by torch.save (zip format, protocol 2 pickle in "<archive>/data.pkl", tensor storages
// in "<archive>/data/<key>"). Read with libzip and a restricted unpickler: only what a state dict needs is understood
// (dict/OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter, torch.*Storage for numeric dtypes); any
// other global, or an opcode that could execute code, raises td::Error naming the file. Nothing read is ever run.
#pragma once

#include <string>

#include "io/tensor_map.h"

namespace td {

TensorMap load_pth(const std::string& path);

// Parses a pickle byte string into the state dict (exposed for the fuzz target and tests). Storages are resolved
// through `storage_loader(key, dtype, numel)`; pass nullptr to only validate the structure.
}  // namespace td
