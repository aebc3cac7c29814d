// The Wan DiT's parameters bound to typed members once at load (no name lookups in the forward), already in the
// dtype and on the device the forward uses. Internal to src/model/dit.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/dit/dit.h"

namespace td {

namespace cuda {
class DitOffloader;
}

// One nn.Linear: either a float weight (f32 on CPU, bf16 on CUDA) or TurboDiffusion's W8A8 form (i8 weight +
// f32 128x128 tile scales). The bias is f32 on the model's device.
struct DitLinear {
  std::string name;
  int64_t in = 0, out = 0;
  Tensor w;
  Tensor w_int8, w_scale;
  Tensor b;
  bool quant() const { return w_int8.defined(); }
};

struct DitBlockWeights {
  DitLinear sq, sk, sv, so;  // self-attention
  DitLinear cq, ck, cv, co;  // cross-attention
  DitLinear ffn0, ffn2;
  Tensor s_norm_q, s_norm_k, c_norm_q, c_norm_k;  // RMSNorm weights, f32 [D], device
  Tensor norm3_w, norm3_b;                          // affine LayerNorm, f32 [D], device
  Tensor modulation;                                // f32 [6, D], host (added to the time projection on the host)
  Tensor proj_l_w, proj_l_b;                        // optional SLA projection [Dh, Dh] / [Dh], f32, device
};

struct DitWeights {
  DitLinear patch, text0, text2, head;
  // The time MLP runs on the host in f32 (one row per forward): f32 host tensors.
  Tensor time0_w, time0_b, time2_w, time2_b, tproj_w, tproj_b;
  Tensor head_modulation;  // f32 [2, D], host
  std::vector<DitBlockWeights> blocks;
  bool quantized = false;  // block linears are W8A8
  size_t device_bytes = 0;
  // --offload: `blocks` keep only their host modulation; the forward uses slot_blocks[offload->acquire(i)], whose
  // tensors are views into the device slots. shared_ptr: its deleter is bound where it is made (CUDA code).
  std::shared_ptr<cuda::DitOffloader> offload;
  DitBlockWeights slot_blocks[2];
};

// The tensors of a block that live on the device (every linear's weight/scale/bias, the norms, proj_l), in a
// fixed order; the offloader packs them in this order.
std::vector<Tensor*> dit_block_device_tensors(DitBlockWeights& b);

// Where parameter values come from: a checkpoint (keys normalised) or a random generator. `get` returns a host
// tensor of any float dtype (i8/f32 for the W8A8 tensors) whose shape has been checked against `shape`.
struct DitWeightSource {
  std::string what;  // for messages
  std::function<bool(const std::string& name)> has;
  std::function<Tensor(const std::string& name, const Shape& shape)> get;
};

// Names of the parameters a config needs (official Wan names). Block linears are listed in their float form
// (`.weight`); `quant_block_linears` lists `.int8_weight` + `.scale` instead.
std::vector<std::string> dit_linear_names(const DitConfig& c);  // every linear's base name ("blocks.0.self_attn.q")
bool dit_is_block_linear(const std::string& base);

// Binds all parameters. `mode` must be resolved (Float or W8A8).
void bind_dit_weights(const DitConfig& c, const DitOptions& o, LinearMode mode, DitWeightSource& src,
                      DitWeights& w);

}  // namespace td
