#include "io/tensor_map.h"

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"

namespace td {

const Tensor& TensorMap::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(source, cat("missing tensor '", name, "'"));
  return it->second;
}

const Tensor* TensorMap::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void TensorMap::put(const std::string& name, Tensor t) {
  t.set_name(name);
  tensors_[name] = std::move(t);
}

std::vector<std::string> TensorMap::names() const {
  std::vector<std::string> v;
  v.reserve(tensors_.size());
  for (auto& kv : tensors_) v.push_back(kv.first);
  return v;
}

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

TensorMap load_checkpoint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open checkpoint (missing file or no permission)");
  unsigned char head[8] = {0};
  f.read(reinterpret_cast<char*>(head), 8);
  size_t got = size_t(f.gcount());
  if (got >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return load_pth(path);
  // Legacy (pre-1.6) torch.save: a protocol-2 pickle of a LONG1 magic number; load_pth explains what to do.
  if (got >= 4 && head[0] == 0x80 && head[1] == 2 && head[2] == 0x8a && head[3] == 0x0a) return load_pth(path);
  if (ends_with(path, ".json")) return load_safetensors_index(path);
  if (got >= 1 && head[0] == '{') return load_safetensors_index(path);
  if (got == 8) return load_safetensors(path);
  fail(path, "file too small to be a checkpoint");
}

}  // namespace td
