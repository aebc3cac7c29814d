// `turbodiff merge`: task-vector merge as TurboDiffusion joins its rCM and SLA fine-tunes
// (turbodiffusion.md §6, scripts/merge_models.py): out = B + w * (D1 - D0), in fp32, cast back to B's dtype.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/tensor_map.h"

namespace td {

struct MergeStats {
  int merged = 0;       // keys in B, D0 and D1
  int copied = 0;       // keys only in D1 (e.g. SLA's proj_l), copied as they are
  int ignored = 0;      // keys only in D0 (logged)
};

// Keys of all three are normalised first (io/key_names.h). Every key of B must be in D0 and D1 with B's shape;
// td::Error naming the file and the keys otherwise (all missing keys listed, up to a readable limit). Quantized
// (int8) inputs are refused. Output order: B's keys, then the copied ones.
std::vector<std::pair<std::string, Tensor>> merge_checkpoints(const TensorMap& base, const TensorMap& diff_base,
                                                              const TensorMap& diff_target, float w,
                                                              MergeStats* stats = nullptr);

}  // namespace td
