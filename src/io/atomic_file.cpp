#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace td {

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  tmp_ = path + ".tmp-" + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(path, cat("cannot open for writing: ", std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, f_) != bytes) fail(path_, cat("write failed: ", std::strerror(errno)));
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0) fail(path_, cat("write failed: ", std::strerror(errno)));
  ::fsync(::fileno(f_));
  std::fclose(f_);
  f_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, cat("rename failed: ", std::strerror(errno)));
  committed_ = true;
}

void check_output_path(const std::string& path, const std::string& flag) {
  TD_CHECK(!path.empty(), flag, "empty output path");
  std::string dir = ".";
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  if (::access(dir.c_str(), W_OK) != 0)
    fail(flag, cat("cannot write ", path, ": directory ", dir, " ", std::strerror(errno)));
}

}  // namespace td
