// CUDA kernels of the umT5 encoder besides its GEMMs (those go through ops::linear / cuBLASLt). Plain C++ types
// only, so src/model/t5 can include this without CUDA headers. Launch configuration lives in t5_kernels_config.h.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace td {
namespace cuda {

// y[M, D] = x * rsqrt(mean(x^2) + eps) * weight. x f32; weight bf16 or f32 [D]; y bf16 or f32.
void t5_rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);

// Unscaled T5 self-attention. qkv: bf16 [L, 3*A] (q | k | v, A = heads*head_dim), pos_table: f32 [num_buckets,
// heads], buckets: i32 [2L-1] with buckets[r + L-1] = bucket of (key - query) = r, mask: i32 [L] (0 = padding key)
// or nullptr. o: bf16 [L, A]. head_dim must be a multiple of 8 and at most 128.
void t5_attention(const Tensor& qkv, const Tensor& pos_table, const Tensor& buckets, const Tensor* mask, int num_heads,
                  Tensor& o);

// y[M, F] = fc1 * gelu_tanh(gate), h: bf16 [M, 2F] holding gate | fc1 per row. y bf16.
void t5_gated_gelu(const Tensor& h, Tensor& y);

// x += y, both f32 of the same shape.
void t5_add_inplace(Tensor& x, const Tensor& y);



// Weight-only INT8: w[N, K] ~= q * scales[n, k / group]. dequant writes bf16; quantize reads bf16 (absmax/127).
void t5_dequant_int8(const Tensor& q, const Tensor& scales, int64_t group, Tensor& w);
void t5_quantize_int8(const Tensor& w, int64_t group, Tensor& q, Tensor& scales);

// Widens a sequence of INT8 matrices into two alternating bf16 buffers on a side stream, so that widening matrix
// n+1 runs while the engine stream's GEMM reads matrix n (the widening is memory-bound, the M = 512 GEMMs are
// compute-bound). Per matrix n, in order: enqueue(n) (side stream, after GEMM n-2 released the buffer),
// acquire(n) (the engine stream waits for it; returns the bf16 [N, K] view), the GEMM, release(n).
class T5Int8Widener {
 public:
  explicit T5Int8Widener(int64_t max_elems);  // two bf16 buffers of max_elems each
  ~T5Int8Widener();
  T5Int8Widener(const T5Int8Widener&) = delete;
  T5Int8Widener& operator=(const T5Int8Widener&) = delete;
  void enqueue(int64_t n, const Tensor& q, const Tensor& scales, int64_t group);
  Tensor acquire(int64_t n);
  void release(int64_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Fills a bf16/f32 device tensor with uniform values in [-bound, bound) from a counter-based hash of
// (seed, element index): the same values as td::t5_hash_uniform on the host.
void t5_fill_uniform(Tensor& t, uint64_t seed, float bound);

// Random-weight encoders (benchmarks): x[i, j] = hash_uniform(seed, ids[i] * D + j, bound), the rows
// td::T5Encoder's host gather would produce, generated on the device. ids: i32 [L] (checked < vocab by the caller),
// x: f32 [L, D].
void t5_embed_random(const Tensor& ids, uint64_t seed, float bound, Tensor& x);

}  // namespace cuda
}  // namespace td
