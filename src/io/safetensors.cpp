#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace td {

using json = nlohmann::json;

// Headers beyond this are certainly corrupt (real ones are well under 10 MB even for 14B shards).
static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::vector<SafetensorsEntry> parse_safetensors_header(const unsigned char* data, size_t size,
                                                       const std::string& source,
                                                       std::map<std::string, std::string>* metadata,
                                                       size_t* data_start) {
  if (size < 8) fail(source, "truncated safetensors file (no header length)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
  if (hlen > kMaxHeaderBytes || hlen > size - 8)
    fail(source, cat("corrupt safetensors header length ", hlen, " (file is ", size, " bytes)"));
  json h;
  try {
    h = json::parse(data + 8, data + 8 + hlen);
  } catch (const std::exception& e) {
    fail(source, cat("safetensors header is not valid JSON: ", e.what()));
  }
  if (!h.is_object()) fail(source, "safetensors header is not a JSON object");
  size_t dstart = 8 + size_t(hlen);
  size_t data_bytes = size - dstart;
  std::vector<SafetensorsEntry> out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (metadata && v.is_object())
        for (auto m = v.begin(); m != v.end(); ++m)
          if (m.value().is_string()) (*metadata)[m.key()] = m.value().get<std::string>();
      continue;
    }
    std::string subject = source + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(subject, "header entry lacks dtype/shape/data_offsets");
    if (!v["dtype"].is_string()) fail(subject, "dtype is not a string");
    SafetensorsEntry e;
    e.name = name;
    if (!dtype_from_safetensors(v["dtype"].get<std::string>(), &e.dtype))
      fail(subject, cat("unsupported dtype ", v["dtype"].get<std::string>()));
    if (!v["shape"].is_array()) fail(subject, "shape is not an array");
    int64_t numel = 1;
    for (auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(subject, "shape has a non-integer or negative dim");
      int64_t dv = d.get<int64_t>();
      if (dv > 0 && numel > (int64_t(1) << 50) / dv) fail(subject, "shape is absurdly large");
      numel *= dv;
      e.shape.push_back(dv);
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(subject, "data_offsets must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_bytes)
      fail(subject, cat("data_offsets [", e.begin, ", ", e.end, "] outside the data section of ", data_bytes,
                        " bytes (truncated file?)"));
    if (e.end - e.begin != size_t(numel) * dtype_size(e.dtype))
      fail(subject, cat("data_offsets span ", e.end - e.begin, " bytes but shape ", shape_str(e.shape), " ",
                        dtype_name(e.dtype), " needs ", size_t(numel) * dtype_size(e.dtype)));
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });
  if (data_start) *data_start = dstart;
  return out;
}

TensorMap load_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  TensorMap m;
  m.source = path;
  size_t dstart = 0;
  auto entries = parse_safetensors_header(file->data(), file->size(), path, &m.metadata, &dstart);
  std::shared_ptr<void> keep = file;
  for (auto& e : entries) {
    // Unaligned data (possible in hand-made files) is copied so typed host access stays legal.
    void* p = const_cast<unsigned char*>(file->data() + dstart + e.begin);
    Tensor t;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      t = Tensor::borrow(p, e.shape, e.dtype, Device::CPU, keep);
    } else {
      t = Tensor::empty(e.shape, e.dtype);
      std::memcpy(t.data(), p, t.nbytes());
    }
    m.put(e.name, t);
  }
  return m;
}

TensorMap load_safetensors_index(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail(path, "cannot open index");
  json idx;
  try {
    idx = json::parse(f);
  } catch (const std::exception& e) {
    fail(path, cat("index is not valid JSON: ", e.what()));
  }
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
    fail(path, "index has no weight_map object");
  std::string dir = ".";
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) dir = path.substr(0, slash);
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(path, cat("weight_map entry '", it.key(), "' is not a file name"));
    std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
      fail(path, cat("weight_map entry '", it.key(), "' names a path outside the index folder: ", shard));
    by_shard[shard].push_back(it.key());
  }
  TensorMap out;
  out.source = path;
  for (auto& kv : by_shard) {
    TensorMap shard = load_safetensors(dir + "/" + kv.first);
    for (auto& name : kv.second) {
      const Tensor* t = shard.find(name);
      if (!t) fail(dir + "/" + kv.first, cat("index says it holds '", name, "' but it does not"));
      out.put(name, *t);
    }
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  size_t off = 0;
  for (auto& kv : tensors) {
    Tensor t = kv.second.to(Device::CPU).contiguous();
    json e;
    e["dtype"] = dtype_safetensors_name(t.dtype());
    e["shape"] = t.shape();
    e["data_offsets"] = {off, off + t.nbytes()};
    off += t.nbytes();
    if (h.contains(kv.first)) fail(path, cat("duplicate tensor name '", kv.first, "'"));
    h[kv.first] = e;
    host.push_back(t);
  }
  std::string hs = h.dump();
  // Pad the header with spaces so the data section starts 8-byte aligned (typed mmap access when read back).
  while ((8 + hs.size()) % 8) hs.push_back(' ');
  uint64_t hlen = hs.size();
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = uint8_t(hlen >> (8 * i));
  AtomicFile f(path);
  f.write(lenb, 8);
  f.write(hs.data(), hs.size());
  for (auto& t : host) f.write(t.data(), t.nbytes());
  f.commit();
}

}  // namespace td
