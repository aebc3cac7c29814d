// Output files are written to "<path>.tmp-<pid>" and renamed over the destination only when complete, so a crash or
// a full disk never leaves a truncated file under the final name.
#pragma once

#include <cstdio>
#include <string>

namespace td {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // opens the temporary; td::Error naming `path` if it cannot
  ~AtomicFile();                                 // removes the temporary unless commit() ran
  void write(const void* data, size_t bytes);
  void commit();  // flush, fsync, rename
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  std::FILE* file() { return f_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// Fails early (before heavy work) if `path`'s directory does not exist or is not writable.
void check_output_path(const std::string& path, const std::string& flag);

}  // namespace td
