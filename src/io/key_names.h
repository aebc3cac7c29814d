// State-dict key normalisation for the Wan DiT.
//
// Checkpoints of the same network come under several naming schemes: official Wan (`blocks.0.self_attn.q.weight`),
// training wrappers that add `net.`/`model.`/`module.`/`_checkpoint_wrapped_module.` (rCM, TurboDiffusion, FSDP),
// ComfyUI's `model.diffusion_model.` prefix, and diffusers' WanTransformer3DModel (`blocks.0.attn1.to_q.weight`).
// Everything here maps to the official Wan names (wan_spec.md §2.2/§2.3), which the DiT loader then expects.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "io/tensor_map.h"

namespace td {

// Maps one key to its official Wan name. Keys it does not recognise are returned with only the wrapper prefixes
// stripped (so e.g. SLA's `blocks.0.self_attn.attn_op.local_attn.proj_l.weight` and the W8A8 `.int8_weight` /
// `.scale` suffixes pass through unchanged).
// `blocks.N.norm2.*` is the one ambiguous name: diffusers' norm2 is the affine official norm3, while an official
// checkpoint could carry (unused) norm2 buffers. It is renamed only when `diffusers_names` is true.
std::string normalize_dit_key(const std::string& key, bool diffusers_names = true);

// Renames every tensor with normalize_dit_key; `diffusers_names` is set when any key is diffusers-only (attn1/attn2,
// condition_embedder, ffn.net, scale_shift_table, proj_out). Two source keys that map to the same name raise
// td::Error naming `m.source` and both original keys. Metadata and source are kept.
TensorMap normalize_dit_keys(const TensorMap& m);

// Compares the names of `m` with what a model needs.
//  - `required`: names that must be present; the missing ones raise td::Error naming `m.source` and listing them
//    (all of them, up to a readable limit), after the unused ones were logged.
//  - `optional`: names that may be present (e.g. I2V-only tensors); not reported when absent.
//  - Any other name in `m` is "unused": each is logged with log_warn (first 20, then a count), and returned.
// `what` names the model in the messages ("Wan DiT").
struct KeyReport {
  std::vector<std::string> missing, unused;  // sorted
};
KeyReport compare_keys(const TensorMap& m, const std::set<std::string>& required,
                       const std::set<std::string>& optional = {});
std::vector<std::string> check_keys(const TensorMap& m, const std::set<std::string>& required,
                                    const std::set<std::string>& optional, const std::string& what);

// `patch_embedding.weight` as the Linear form [dim, in_dim*4]. Accepts Conv3d [dim, in_dim, 1, 2, 2] (official,
// diffusers, ComfyUI) or Linear [dim, in_dim*4] (rCM/TurboDiffusion). The Linear's input order (c, kt, kh, kw) is
// exactly the contiguous Conv3d weight's memory order, so a contiguous input gives a zero-copy view. Pass dim /
// in_dim <= 0 to accept any size (e.g. while inferring a config); td::Error naming the tensor otherwise.
Tensor patch_embedding_as_linear(const Tensor& w, int64_t dim = 0, int64_t in_dim = 0);

}  // namespace td
