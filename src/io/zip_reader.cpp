#include "io/zip_reader.h"

#include <zip.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace td {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kEocdSize = 22, kCentralSize = 46, kLocalSize = 30;

uint16_t rd16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t rd32(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
uint64_t rd64(const unsigned char* p) { return uint64_t(rd32(p)) | (uint64_t(rd32(p + 4)) << 32); }

// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

}  // namespace

ZipArchive::ZipArchive(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& path = file_->path();
  const unsigned char* d = file_->data();
  const uint64_t n = file_->size();
  if (n < kEocdSize) fail(path, "not a zip archive (too small; truncated?)");

  // End of central directory: the last 22 bytes, unless an archive comment (< 64 KiB) follows it.
  uint64_t eocd = UINT64_MAX;
  uint64_t lowest = n - kEocdSize > 0xFFFF ? n - kEocdSize - 0xFFFF : 0;
  for (uint64_t p = n - kEocdSize + 1; p-- > lowest;) {
    if (rd32(d + p) == kEocdSig && p + kEocdSize + rd16(d + p + 20) <= n) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX) fail(path, "not a zip archive or truncated (no end-of-central-directory record)");
  uint64_t count = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    // zip64: a locator sits right before the EOCD and points at the zip64 EOCD record.
    if (eocd < 20 || rd32(d + eocd - 20) != kZip64LocatorSig) fail(path, "zip64 archive without a zip64 locator");
    uint64_t z = rd64(d + eocd - 20 + 8);
    if (!fits(z, 56, n) || rd32(d + z) != kZip64EocdSig) fail(path, "corrupt zip64 end-of-central-directory record");
    count = rd64(d + z + 32);
    cd_size = rd64(d + z + 40);
    cd_off = rd64(d + z + 48);
  }
  if (!fits(cd_off, cd_size, n)) fail(path, "central directory lies outside the file (truncated?)");
  if (count > cd_size / kCentralSize) fail(path, "corrupt central directory (entry count does not fit its size)");

  entries_.reserve(size_t(count));
  uint64_t p = cd_off;
  const uint64_t cd_end = cd_off + cd_size;
  for (uint64_t i = 0; i < count; i++) {
    if (!fits(p, kCentralSize, cd_end) || rd32(d + p) != kCentralSig)
      fail(path, cat("corrupt central directory at entry ", i));
    ZipEntry e;
    e.index = uint32_t(i);
    e.flags = rd16(d + p + 8);
    e.method = rd16(d + p + 10);
    e.crc = rd32(d + p + 16);
    e.comp_size = rd32(d + p + 20);
    e.size = rd32(d + p + 24);
    uint16_t nlen = rd16(d + p + 28), xlen = rd16(d + p + 30), clen = rd16(d + p + 32);
    e.local_header_offset = rd32(d + p + 42);
    if (!fits(p + kCentralSize, uint64_t(nlen) + xlen + clen, cd_end))
      fail(path, cat("corrupt central directory at entry ", i));
    e.name.assign(reinterpret_cast<const char*>(d + p + kCentralSize), nlen);
    // zip64 extra field: 64-bit values for exactly those 32-bit fields that are saturated, in this order.
    const unsigned char* x = d + p + kCentralSize + nlen;
    for (size_t off = 0; off + 4 <= xlen;) {
      uint16_t id = rd16(x + off), len = rd16(x + off + 2);
      if (off + 4 + len > xlen) fail(path, cat("zip entry '", e.name, "': corrupt extra field"));
      if (id == 0x0001) {
        const unsigned char* z = x + off + 4;
        size_t zl = len, zo = 0;
        auto take = [&](uint64_t* v) {
          if (zo + 8 > zl) fail(path, cat("zip entry '", e.name, "': truncated zip64 extra field"));
          *v = rd64(z + zo);
          zo += 8;
        };
        if (e.size == 0xFFFFFFFFu) take(&e.size);
        if (e.comp_size == 0xFFFFFFFFu) take(&e.comp_size);
        if (e.local_header_offset == 0xFFFFFFFFu) take(&e.local_header_offset);
      }
      off += 4 + size_t(len);
    }
    if (e.flags & 1) fail(path, cat("zip entry '", e.name, "' is encrypted"));
    if (e.method != 0 && e.method != 8)
      fail(path, cat("zip entry '", e.name, "' uses compression method ", e.method, "; only stored and deflate are read"));
    // Deflate cannot expand more than ~1032:1, so a larger claim is a forged size (and would be a huge allocation).
    if (e.method == 8 && e.size / 1032 > e.comp_size + 1)
      fail(path, cat("zip entry '", e.name, "' claims ", e.size, " bytes from ", e.comp_size, " compressed"));
    if (e.method == 0 && e.comp_size != e.size)
      fail(path, cat("zip entry '", e.name, "' is stored but its sizes differ (", e.comp_size, " vs ", e.size, ")"));
    // Data offset from the local header (its extra field, where torch puts the alignment padding, may differ
    // from the central one).
    uint64_t h = e.local_header_offset;
    if (!fits(h, kLocalSize, n) || rd32(d + h) != kLocalSig)
      fail(path, cat("zip entry '", e.name, "': local header missing at offset ", h, " (truncated or corrupt)"));
    e.data_offset = h + kLocalSize + rd16(d + h + 26) + rd16(d + h + 28);
    if (!fits(e.data_offset, e.comp_size, n))
      fail(path, cat("zip entry '", e.name, "': data [", e.data_offset, ", +", e.comp_size,
                     ") runs past the end of the file (", n, " bytes; truncated?)"));
    if (!by_name_.emplace(e.name, entries_.size()).second) fail(path, cat("duplicate zip entry '", e.name, "'"));
    entries_.push_back(std::move(e));
    p += kCentralSize + nlen + xlen + clen;
  }

  // libzip over the same mapping: reads compressed entries and agrees with the directory parsed above.
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(d, n, 0, &err);
  if (!src) {
    std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    fail(path, "libzip: " + msg);
  }
  za_ = zip_open_from_source(src, ZIP_RDONLY, &err);
  if (!za_) {
    std::string msg = zip_error_strerror(&err);
    zip_source_free(src);
    zip_error_fini(&err);
    fail(path, "not a valid zip archive (libzip: " + msg + ")");
  }
  zip_error_fini(&err);
  if (uint64_t(zip_get_num_entries(za_, 0)) != entries_.size()) {
    zip_discard(za_);
    za_ = nullptr;
    fail(path, "corrupt zip archive (central directory entry count disagrees with libzip)");
  }
}

ZipArchive::~ZipArchive() {
  if (za_) zip_discard(za_);
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

const unsigned char* ZipArchive::stored_data(const ZipEntry& e) const {
  return e.stored() ? file_->data() + e.data_offset : nullptr;
}

void ZipArchive::read(const ZipEntry& e, void* dst) const {
  const std::string subject = path() + ": " + e.name;
  const char* name = zip_get_name(za_, e.index, ZIP_FL_ENC_RAW);
  if (!name || e.name != name) fail(subject, "zip directory disagrees with libzip about this entry");
  zip_file_t* f = zip_fopen_index(za_, e.index, 0);
  if (!f) fail(subject, cat("cannot open entry (libzip: ", zip_strerror(za_), ")"));
  uint64_t done = 0;
  char* out = static_cast<char*>(dst);
  // One read past the end: libzip verifies the CRC when it reaches the end of the entry.
  char probe[1];
  while (true) {
    zip_int64_t got = done < e.size ? zip_fread(f, out + done, e.size - done) : zip_fread(f, probe, 1);
    if (got < 0) {
      std::string msg = zip_file_strerror(f);
      zip_fclose(f);
      fail(subject, "cannot read entry (libzip: " + msg + ")");
    }
    if (got == 0) break;
    if (done >= e.size) {
      zip_fclose(f);
      fail(subject, "entry is longer than the directory says");
    }
    done += uint64_t(got);
  }
  zip_fclose(f);
  if (done != e.size) fail(subject, cat("entry ended after ", done, " of ", e.size, " bytes"));
}

std::string ZipArchive::read_string(const ZipEntry& e, size_t max_bytes) const {
  if (e.size > max_bytes) fail(path() + ": " + e.name, cat("entry is ", e.size, " bytes, more than ", max_bytes));
  std::string s(size_t(e.size), '\0');
  if (!s.empty()) read(e, &s[0]);
  return s;
}

}  // namespace td
