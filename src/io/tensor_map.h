// A named set of tensors loaded from checkpoint file(s). Host tensors borrowed from mmapped files where possible.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace td {

class TensorMap {
 public:
  std::string source;  // file (or index) the tensors came from, for error messages

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws td::Error "<source>: missing tensor '<name>'".
  const Tensor& get(const std::string& name) const;
  const Tensor* find(const std::string& name) const;
  void put(const std::string& name, Tensor t);
  void erase(const std::string& name) { tensors_.erase(name); }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  const std::map<std::string, Tensor>& all() const { return tensors_; }
  std::map<std::string, Tensor>& all() { return tensors_; }

  // Metadata from the file (safetensors __metadata__, or config.json beside it when the loader finds one).
  std::map<std::string, std::string> metadata;

 private:
  std::map<std::string, Tensor> tensors_;
};

// Opens any supported checkpoint by content: safetensors, a sharded safetensors index (.json), or a PyTorch
// zip (.pth/.pt written by torch.save). Names are kept as in the file; callers normalise keys (see key_names.h).
TensorMap load_checkpoint(const std::string& path);

}  // namespace td
