// Read-only memory map of a whole file. Shared by tensors borrowed from it (zero-copy loading on the host).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace td {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);  // td::Error naming path on failure
  ~MappedFile();
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Tells the kernel the range will be read soon / is no longer needed (streaming large checkpoints).
  void advise_willneed(size_t offset, size_t bytes) const;
  void advise_dontneed(size_t offset, size_t bytes) const;

 private:
  MappedFile() = default;
  std::string path_;
  unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace td
