#include "core/tensor.h"

#include <cstring>
#include <numeric>
#include <sstream>

#include "core/allocator.h"
#include "core/error.h"
#include "core/threads.h"

namespace td {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); i++) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto v : s) n *= v;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int i = int(shape.size()) - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

static std::shared_ptr<Storage> make_storage(size_t bytes, Device dev) {
  auto st = std::make_shared<Storage>();
  st->bytes = bytes;
  st->device = dev;
  size_t alloc_bytes = bytes ? bytes : 1;
  if (dev == Device::CPU) {
    st->data = host_alloc(alloc_bytes);
    st->release = [](void* p, size_t b) { host_free(p, b); };
  } else {
    st->data = device_alloc(alloc_bytes);
    st->release = [](void* p, size_t b) { device_free(p, b); };
  }
  return st;
}

Tensor Tensor::empty(const Shape& shape, DType dt, Device dev) {
  for (auto v : shape) TD_CHECK(v >= 0, "tensor", "negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.storage_ = make_storage(size_t(shape_numel(shape)) * dtype_size(dt), dev);
  t.dtype_ = dt;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dt, Device dev) {
  Tensor t = empty(shape, dt, dev);
  if (dev == Device::CPU) {
    std::memset(t.data(), 0, t.nbytes());
  } else {
    Tensor h = zeros(shape, dt, Device::CPU);
    t.copy_from(h);
  }
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dt, Device dev, std::shared_ptr<void> keepalive) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->data = data;
  t.storage_->bytes = size_t(shape_numel(shape)) * dtype_size(dt);
  t.storage_->device = dev;
  t.storage_->keepalive = std::move(keepalive);
  t.dtype_ = dt;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::from_f32(const Shape& shape, const std::vector<float>& values) {
  TD_ASSERT(int64_t(values.size()) == shape_numel(shape), "from_f32 size mismatch");
  Tensor t = empty(shape, DType::F32);
  std::memcpy(t.data(), values.data(), values.size() * 4);
  return t;
}

int64_t Tensor::size(int d) const {
  if (d < 0) d += dim();
  TD_ASSERT(d >= 0 && d < dim(), "dim ", d, " out of range for ", describe());
  return shape_[d];
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

Tensor Tensor::view(const Shape& shape) const {
  TD_ASSERT(is_contiguous(), "view of a non-contiguous tensor ", describe());
  Shape s = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == -1) {
      TD_ASSERT(infer < 0, "two -1 dims in view");
      infer = int(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[infer] = known ? numel() / known : 0;
  TD_CHECK(shape_numel(s) == numel(), name_.empty() ? "tensor" : name_, "cannot view ", shape_str(shape_), " as ",
           shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice(int d, int64_t start, int64_t end) const {
  if (d < 0) d += dim();
  TD_ASSERT(d >= 0 && d < dim() && start >= 0 && start <= end && end <= shape_[d], "bad slice of ", describe());
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = end - start;
  return t;
}

Tensor Tensor::select(int d, int64_t index) const {
  if (d < 0) d += dim();
  TD_ASSERT(d >= 0 && d < dim() && index >= 0 && index < shape_[d], "bad select on ", describe());
  Tensor t = *this;
  t.offset_ += index * strides_[d];
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::permute(const std::vector<int>& order) const {
  TD_ASSERT(int(order.size()) == dim(), "permute order has wrong length");
  Tensor t = *this;
  for (int i = 0; i < dim(); i++) {
    t.shape_[i] = shape_[order[i]];
    t.strides_[i] = strides_[order[i]];
  }
  return t;
}

Tensor Tensor::transpose(int a, int b) const {
  std::vector<int> order(dim());
  std::iota(order.begin(), order.end(), 0);
  if (a < 0) a += dim();
  if (b < 0) b += dim();
  std::swap(order[a], order[b]);
  return permute(order);
}

// Strided host copy, element size es. Walks the destination in contiguous order.
static void strided_copy_host(char* dst, const char* src, const Shape& shape, const Shape& sst, size_t es) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  int nd = int(shape.size());
  std::vector<int64_t> idx(nd, 0);
  // Fast path over the innermost dim when it is contiguous in the source.
  int64_t inner = nd ? shape[nd - 1] : 1;
  bool inner_contig = nd == 0 || sst[nd - 1] == 1;
  for (int64_t i = 0; i < n; i += inner) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; d++) off += idx[d] * sst[d];
    if (inner_contig) {
      std::memcpy(dst + i * es, src + off * es, size_t(inner) * es);
    } else {
      for (int64_t j = 0; j < inner; j++) std::memcpy(dst + (i + j) * es, src + (off + j * sst[nd - 1]) * es, es);
    }
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  if (device() == Device::CPU) {
    Tensor t = empty(shape_, dtype_, Device::CPU);
    strided_copy_host(static_cast<char*>(t.data()), static_cast<const char*>(data()), shape_, strides_,
                      dtype_size(dtype_));
    t.name_ = name_;
    return t;
  }
  // Device: go through the host. Hot paths never do this; ops take strided inputs or produce contiguous output.
  return to(Device::CPU).contiguous().to(Device::CUDA);
}

Tensor Tensor::to(Device dev) const {
  if (dev == device() && is_contiguous()) return *this;
  if (device() == Device::CUDA && !is_contiguous()) {
    // A strided device view: copy the storage span it covers to the host, then gather there. (Going through
    // to(Device::CPU) again recursed forever.) Views only slice and permute, so strides are non-negative.
    const size_t es = dtype_size(dtype_);
    Tensor host = empty(shape_, dtype_, Device::CPU);
    if (numel() == 0) return dev == Device::CPU ? host : host.to(dev);
    int64_t span = 1;
    for (size_t i = 0; i < shape_.size(); i++) {
      TD_ASSERT(strides_[i] >= 0, "negative stride in a device view");
      span += (shape_[i] - 1) * strides_[i];
    }
    std::vector<char> raw(size_t(span) * es);
    device_memcpy(raw.data(), data(), raw.size(), 1);
    strided_copy_host(static_cast<char*>(host.data()), raw.data(), shape_, strides_, es);
    host.name_ = name_;
    return dev == Device::CPU ? host : host.to(dev);
  }
  Tensor src = device() == Device::CPU ? contiguous() : *this;
  Tensor t = empty(shape_, dtype_, dev);
  t.copy_from(src);
  t.name_ = name_;
  return t;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_) return *this;
  TD_CHECK(device() == Device::CPU, name_.empty() ? "tensor" : name_, "host dtype conversion of a device tensor");
  Tensor src = contiguous();
  Tensor t = empty(shape_, dt, Device::CPU);
  const size_t n = size_t(numel()), si = dtype_size(dtype_), so = dtype_size(dt);
  // Chunks on the thread pool: a 480p latent or a text context is millions of values (single-threaded, the
  // conversions took several ms per denoising step).
  parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
    const char* in = static_cast<const char*>(src.data()) + size_t(lo) * si;
    char* out = static_cast<char*>(t.data()) + size_t(lo) * so;
    const size_t m = size_t(hi - lo);
    if (dt == DType::F32) {
      convert_to_f32(in, dtype_, reinterpret_cast<float*>(out), m);
    } else {
      std::vector<float> tmp(m);
      convert_to_f32(in, dtype_, tmp.data(), m);
      convert_from_f32(tmp.data(), out, dt, m);
    }
  }, int64_t(1) << 16);
  t.name_ = name_;
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  TD_CHECK(src.shape_ == shape_, name_.empty() ? "tensor" : name_, "copy shape mismatch: ", shape_str(src.shape_),
           " into ", shape_str(shape_));
  TD_CHECK(src.dtype_ == dtype_, name_.empty() ? "tensor" : name_, "copy dtype mismatch: ", dtype_name(src.dtype_),
           " into ", dtype_name(dtype_));
  TD_ASSERT(is_contiguous(), "copy_from into a non-contiguous tensor");
  if (device() == Device::CPU && src.device() == Device::CPU) {
    strided_copy_host(static_cast<char*>(data()), static_cast<const char*>(src.data()), shape_, src.strides_,
                      dtype_size(dtype_));
    return;
  }
  Tensor s = src;
  if (!s.is_contiguous()) s = s.contiguous();
  int kind = device() == Device::CUDA ? (s.device() == Device::CPU ? 0 : 2) : 1;
  device_memcpy(data(), s.data(), nbytes(), kind);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  t.name_ = name_;
  return t;
}

std::string Tensor::describe() const {
  return cat(name_.empty() ? "tensor" : name_, " ", shape_str(shape_), " ", dtype_name(dtype_), " ",
             device_name(device()));
}

void expect_shape(const Tensor& t, const Shape& shape, const std::string& what) {
  TD_CHECK(t.shape() == shape, what, "expected shape ", shape_str(shape), ", got ", shape_str(t.shape()));
}

void expect_dtype(const Tensor& t, DType dt, const std::string& what) {
  TD_CHECK(t.dtype() == dt, what, "expected dtype ", dtype_name(dt), ", got ", dtype_name(t.dtype()));
}

}  // namespace td
