// Read-only view of a zip archive held in a memory-mapped file (the container torch.save writes).
//
// Why not libzip alone: zero-copy loading needs each entry's data offset in the file, which libzip does not expose.
// So the central directory (zip64 included: 14B checkpoints are ~28 GB) is parsed here, with every offset bounds
// checked, and libzip is used to read entries that cannot be borrowed (compressed ones) and to cross-check the
// directory. torch.save writes entries STORED with data 64-byte aligned, so normally nothing is copied.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

struct zip;  // libzip's zip_t

namespace td {

struct ZipEntry {
  std::string name;
  uint32_t index = 0;   // position in the central directory (= libzip index)
  uint16_t method = 0;  // 0 = stored, 8 = deflate
  uint16_t flags = 0;
  uint32_t crc = 0;
  uint64_t comp_size = 0, size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // first byte of the (possibly compressed) data in the file
  bool stored() const { return method == 0; }
};

class ZipArchive {
 public:
  // Parses the archive in `file`; td::Error naming `file->path()` on anything inconsistent or truncated.
  explicit ZipArchive(std::shared_ptr<MappedFile> file);
  ~ZipArchive();
  ZipArchive(const ZipArchive&) = delete;
  ZipArchive& operator=(const ZipArchive&) = delete;

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

  // The entry's bytes inside the mapping; only for stored entries (nullptr otherwise).
  const unsigned char* stored_data(const ZipEntry& e) const;
  // Reads the whole (decompressed) entry into dst[0, e.size) through libzip, which also checks the CRC.
  void read(const ZipEntry& e, void* dst) const;
  std::string read_string(const ZipEntry& e, size_t max_bytes) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
  ::zip* za_ = nullptr;
};

}  // namespace td
