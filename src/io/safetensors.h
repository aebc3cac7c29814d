// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {str: str}}, then the raw data. Reading maps the file and borrows each tensor zero-copy.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/tensor_map.h"

namespace td {

// Parses and validates a header (used by the loader and by the fuzz target). `file_size` bounds the offsets.
// Returns entries in file order. td::Error naming `source` on any inconsistency.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin, end;  // byte offsets relative to the data section
};
std::vector<SafetensorsEntry> parse_safetensors_header(const unsigned char* data, size_t size,
                                                       const std::string& source,
                                                       std::map<std::string, std::string>* metadata = nullptr,
                                                       size_t* data_start = nullptr);

TensorMap load_safetensors(const std::string& path);
// Loads `*.safetensors.index.json` (weight_map name -> shard file, relative to the index).
TensorMap load_safetensors_index(const std::string& path);

// Writes tensors (host or device; any dtype) atomically, in the given order.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace td
