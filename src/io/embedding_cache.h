// On-disk cache of prompt embeddings, so a repeated prompt skips the (5.7B-parameter) text encoder.
//
// Key: a 128-bit hash of (encoder identity, cleaned prompt, int8 flag). The encoder identity is the weights file's
// canonical path, size and mtime plus the model config, so replacing the file invalidates its entries. Each entry
// is one safetensors file <dir>/t5-<hash>.safetensors holding `ids` (i32 [L]) and `emb` (f32 [L, dim]); its
// metadata repeats the key, which is compared on lookup (a hash collision or a foreign file is a miss). Writes go
// through AtomicFile (temp + fsync + rename), so concurrent runs and crashes never leave a torn entry. Cache
// failures (read-only disk, corrupt entry) are logged and treated as a miss: they never fail a run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace td {

struct EmbeddingCacheKey {
  std::string encoder_identity;
  std::string cleaned_prompt;
  bool int8 = false;
};

// $TURBODIFF_CACHE_DIR, else $XDG_CACHE_HOME/turbodiff, else ~/.cache/turbodiff (the directory may not exist yet).
std::string default_cache_dir();
// "<canonical path>|<size>|<mtime ns>" of a file; td::Error naming the path if it cannot be read.
std::string file_identity(const std::string& path);

class EmbeddingCache {
 public:
  explicit EmbeddingCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  static std::string key_hash(const EmbeddingCacheKey& key);  // 32 hex digits
  std::string entry_path(const EmbeddingCacheKey& key) const;

  // True and fills ids/emb (host f32 [L, dim]) on a hit.
  bool lookup(const EmbeddingCacheKey& key, std::vector<int32_t>* ids, Tensor* emb) const;
  // Stores an entry (creating the directory); returns false (with a warning) if it could not.
  bool store(const EmbeddingCacheKey& key, const std::vector<int32_t>& ids, const Tensor& emb) const;

 private:
  std::string dir_;
};

}  // namespace td
