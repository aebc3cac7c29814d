// Tensor: a typed, strided view over a reference-counted storage on the host or a CUDA device.
//
// Storage is either owned (allocated through the caching allocator) or borrowed (an mmapped checkpoint region that
// the storage keeps alive through its `keepalive` handle). Views share storage and carry their own offset/strides.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace td {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  std::function<void(void*, size_t)> release;  // returns memory to its allocator; empty for borrowed memory
  std::shared_ptr<void> keepalive;             // e.g. the mmapped file a borrowed region lives in
  ~Storage() {
    if (release && data) release(data, bytes);
  }
};

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;

  // Allocates uninitialised memory (the caching allocator on CUDA, aligned memory on the host).
  static Tensor empty(const Shape& shape, DType dt, Device dev = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dt, Device dev = Device::CPU);
  // Wraps memory owned by someone else; `keepalive` is held as long as any view exists.
  static Tensor borrow(void* data, const Shape& shape, DType dt, Device dev, std::shared_ptr<void> keepalive);
  // Host f32 tensor from values (tests, small tables).
  static Tensor from_f32(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  bool is_cuda() const { return device() == Device::CUDA; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int dim() const { return int(shape_.size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* data() const { return static_cast<char*>(storage_->data) + offset_ * dtype_size(dtype_); }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data()); }

  // Views (no copy).
  Tensor view(const Shape& shape) const;                          // contiguous only; one dim may be -1
  Tensor slice(int d, int64_t start, int64_t end) const;          // [start, end) along d
  Tensor select(int d, int64_t index) const;                      // drops dim d
  Tensor permute(const std::vector<int>& order) const;
  Tensor transpose(int a, int b) const;

  // Copies.
  Tensor contiguous() const;                        // same device; returns *this if already contiguous
  Tensor to(Device dev) const;                      // contiguous copy on another device (or *this)
  Tensor to(DType dt) const;                        // host-only dtype conversion through f32 (any -> any float)
  Tensor to_f32_host() const { return to(Device::CPU).to(DType::F32); }
  void copy_from(const Tensor& src);                // same shape; any device pair; dtypes must match
  Tensor clone() const;

  const std::string& name() const { return name_; }
  Tensor& set_name(std::string n) {
    name_ = std::move(n);
    return *this;
  }
  std::string describe() const;  // "name [a, b] bf16 cuda"

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  int64_t offset() const { return offset_; }

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
  Shape shape_, strides_;
  std::string name_;
};

Shape contiguous_strides(const Shape& shape);

// Raises td::Error naming the tensor if its shape/dtype/device differ from what is expected.
void expect_shape(const Tensor& t, const Shape& shape, const std::string& what);
void expect_dtype(const Tensor& t, DType dt, const std::string& what);

}  // namespace td
