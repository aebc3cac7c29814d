#include "io/embedding_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"

namespace td {

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

bool mkdirs(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); i++) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
    if (i < dir.size()) cur += dir[i];
  }
  struct stat st;
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* kFormat = "turbodiff-t5-embedding-1";

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("TURBODIFF_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/turbodiff";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/turbodiff";
  return "/tmp/turbodiff-cache";
}

std::string file_identity(const std::string& path) {
  struct stat st;
  TD_CHECK(::stat(path.c_str(), &st) == 0, path, "cannot stat: ", std::strerror(errno));
  char buf[PATH_MAX];
  std::string canon = ::realpath(path.c_str(), buf) ? std::string(buf) : path;
  long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  return cat(canon, "|", (long long)st.st_size, "|", mtime_ns);
}

std::string EmbeddingCache::key_hash(const EmbeddingCacheKey& key) {
  // Length-prefixed fields, so ("ab","c") and ("a","bc") differ.
  std::string s = cat(kFormat, "\n", key.encoder_identity.size(), ":", key.encoder_identity, "\n",
                      key.cleaned_prompt.size(), ":", key.cleaned_prompt, "\n", key.int8 ? "int8" : "bf16");
  uint64_t a = fnv1a(s, 0xcbf29ce484222325ull), b = fnv1a(s, 0x84222325cbf29ce4ull ^ a);
  char out[33];
  std::snprintf(out, sizeof(out), "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  return out;
}

std::string EmbeddingCache::entry_path(const EmbeddingCacheKey& key) const {
  return dir_ + "/t5-" + key_hash(key) + ".safetensors";
}

bool EmbeddingCache::lookup(const EmbeddingCacheKey& key, std::vector<int32_t>* ids, Tensor* emb) const {
  std::string path = entry_path(key);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  try {
    TensorMap m = load_safetensors(path);
    auto md = m.metadata;
    if (md["format"] != kFormat || md["encoder"] != key.encoder_identity || md["prompt"] != key.cleaned_prompt ||
        md["int8"] != (key.int8 ? "1" : "0"))
      return false;
    const Tensor& ti = m.get("ids");
    const Tensor& te = m.get("emb");
    if (ti.dtype() != DType::I32 || te.dtype() != DType::F32 || ti.dim() != 1 || te.dim() != 2 ||
        te.size(0) != ti.size(0))
      fail(path, "unexpected tensors in a cache entry");
    ids->assign(ti.ptr<int32_t>(), ti.ptr<int32_t>() + ti.numel());
    *emb = te.clone();  // do not keep the mapping alive (the entry may be replaced)
    return true;
  } catch (const Error& e) {
    log_warn("embedding cache: ignoring unreadable entry: ", e.what());
    return false;
  }
}

bool EmbeddingCache::store(const EmbeddingCacheKey& key, const std::vector<int32_t>& ids, const Tensor& emb) const {
  try {
    if (!mkdirs(dir_)) {
      log_warn("embedding cache: cannot create ", dir_, " (", std::strerror(errno), "); not caching");
      return false;
    }
    Tensor ti = Tensor::empty({int64_t(ids.size())}, DType::I32);
    for (size_t i = 0; i < ids.size(); i++) ti.ptr<int32_t>()[i] = ids[i];
    std::map<std::string, std::string> md = {{"format", kFormat},
                                             {"encoder", key.encoder_identity},
                                             {"prompt", key.cleaned_prompt},
                                             {"int8", key.int8 ? "1" : "0"}};
    save_safetensors(entry_path(key), {{"ids", ti}, {"emb", emb.to_f32_host().contiguous()}}, md);
    return true;
  } catch (const Error& e) {
    log_warn("embedding cache: could not store an entry: ", e.what());
    return false;
  }
}

}  // namespace td
