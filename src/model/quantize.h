// `turbodiff quantize`: a bf16/f32 Wan DiT checkpoint -> TurboDiffusion's `-quant` layout (turbodiffusion.md §4):
// every Linear inside `blocks` except SLA's proj_l (self_attn q,k,v,o; cross_attn q,k,v,o; ffn.0; ffn.2, and the
// I2V k_img/v_img when present) becomes `<name>.int8_weight` i8 [out,in] + `<name>.scale` f32
// [ceil(out/128), ceil(in/128)] + `<name>.bias` bf16; every other float tensor is written as bf16.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/tensor_map.h"

namespace td {

// True for the `.weight` of a Linear that TurboDiffusion quantizes (an official-Wan name after normalisation).
bool is_w8a8_linear_weight(const std::string& name, const Tensor& t);

struct QuantizeStats {
  int linears = 0;           // Linears quantized
  int64_t bytes_in = 0, bytes_out = 0;
};

// Keys are normalised (io/key_names.h) first, so official, rCM/TurboDiffusion (`net.`), ComfyUI and diffusers
// names all work; patch_embedding is written in its Linear form [dim, in_dim*4] as TurboDiffusion's files have it.
// td::Error naming `in.source` if the input is already quantized or holds no block Linears.
std::vector<std::pair<std::string, Tensor>> quantize_dit_checkpoint(const TensorMap& in, QuantizeStats* stats = nullptr);

}  // namespace td
