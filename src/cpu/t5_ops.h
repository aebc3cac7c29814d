// CPU reference ops specific to the (um)T5 encoder (wan/modules/t5.py). fp32 math; weights may stay bf16 (or
// INT8 with group scales) and are widened to fp32 one matrix at a time, so the 11 GB XXL checkpoint is never
// expanded to 22 GB in memory.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace td {
namespace cpu {

// T5RelativeEmbedding._relative_position_bucket for rel = key_pos - query_pos.
int t5_relative_bucket(int64_t rel, int num_buckets, int max_dist, bool bidirectional);

// A [N, K] weight as stored for the encoder: f32/bf16/f16, or INT8 with f32 scales [N, K/group] (w = q * scale).
struct T5Matrix {
  Tensor w;
  Tensor scales;  // defined only for INT8
  int64_t group = 0;
  int64_t rows() const { return w.size(0); }
  int64_t cols() const { return w.size(1); }
  size_t bytes() const { return w.nbytes() + (scales.defined() ? scales.nbytes() : 0); }
};

// Weight-only INT8 quantization with one absmax scale per `group` consecutive inputs of each output row
// (group must divide K). Rows of zeros get scale 1.
T5Matrix t5_quantize_int8(const Tensor& w, int64_t group);
// Widens rows [r0, r1) of `m` to fp32 into dst (row-major, K floats per row).
void t5_dequantize_rows(const T5Matrix& m, int64_t r0, int64_t r1, float* dst);

// y[M, N] = x[M, K] · W^T, x/y host f32 contiguous.
void t5_linear(const Tensor& x, const T5Matrix& w, Tensor& y);

// y = rmsnorm(x) * weight, T5LayerNorm (no mean subtraction, no bias). x, y [M, D] f32; weight any float dtype.
void t5_rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);

// h[M, F] = fc1[M, F] * gelu_tanh(gate[M, F]), in place into fc1.
void t5_gated_gelu(Tensor& fc1, const Tensor& gate);

// Self-attention without scaling: o[L, H*Dh] = softmax(q k^T + bias[h, i, j] + mask) v, per head.
// q, k, v: [L, H*Dh] f32. pos_table: [num_buckets, H] (any float dtype), bias = pos_table[bucket(j - i), h]
// (bidirectional). mask: L entries, 0 = padding key (excluded), or nullptr.
void t5_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pos_table, const int32_t* mask,
                  int num_heads, int max_dist, Tensor& o);

}  // namespace cpu
}  // namespace td
