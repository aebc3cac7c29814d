#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace td {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, cat("cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, cat("cannot stat: ", std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(path, "is a directory, expected a file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size_t(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(path, cat("cannot mmap: ", std::strerror(errno)));
    }
    m->data_ = static_cast<unsigned char*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

static void advise(const unsigned char* base, size_t size, size_t offset, size_t bytes, int what) {
  if (!base || offset >= size) return;
  size_t page = size_t(::sysconf(_SC_PAGESIZE));
  size_t start = offset / page * page;
  size_t end = std::min(size, offset + bytes);
  ::madvise(const_cast<unsigned char*>(base) + start, end - start, what);
}

void MappedFile::advise_willneed(size_t offset, size_t bytes) const {
  advise(data_, size_, offset, bytes, MADV_WILLNEED);
}
void MappedFile::advise_dontneed(size_t offset, size_t bytes) const {
  advise(data_, size_, offset, bytes, MADV_DONTNEED);
}

}  // namespace td
