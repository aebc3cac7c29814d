// The VAE's single-head spatial self-attention core for one frame: qkv [L, 3C] (q = cols [0,C), k = [C,2C),
// v = [2C,3C)) -> o [L, C] = softmax(q k^T / sqrt(C)) v. Queries are processed in blocks so scratch stays bounded.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cpu {
void vae_attention(const Tensor& qkv, Tensor& o);
}  // namespace cpu
}  // namespace td
