#include "io/key_names.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace td {

namespace {

using Parts = std::vector<std::string>;

Parts split_dots(const std::string& s) {
  Parts out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

std::string join_dots(const Parts& p, size_t from = 0) {
  std::string s;
  for (size_t i = from; i < p.size(); i++) {
    if (i > from) s.push_back('.');
    s += p[i];
  }
  return s;
}

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit((unsigned char)c); });
}

// Components added by training wrappers in front of the network's own names. `model.diffusion_model.` is ComfyUI;
// `net.` rCM/TurboDiffusion; `module.` DDP; `_orig_mod.` torch.compile; the other two FSDP / activation checkpointing.
bool is_front_wrapper(const std::string& c) {
  return c == "net" || c == "model" || c == "module" || c == "diffusion_model" || c == "_checkpoint_wrapped_module" ||
         c == "_fsdp_wrapped_module" || c == "_orig_mod";
}
// Wrappers that also appear mid-key (FSDP wraps each block: `blocks.3._checkpoint_wrapped_module.ffn.0.weight`).
bool is_inner_wrapper(const std::string& c) {
  return c == "_checkpoint_wrapped_module" || c == "_fsdp_wrapped_module" || c == "_orig_mod";
}

struct Rule {
  Parts from, to;
};

// diffusers -> official, for names below `blocks.N.` (wan_spec.md §2.3). Longest patterns first where they overlap.
const std::vector<Rule>& block_rules() {
  static const std::vector<Rule> r = {
      {{"scale_shift_table"}, {"modulation"}},
      {{"attn1", "to_q"}, {"self_attn", "q"}},
      {{"attn1", "to_k"}, {"self_attn", "k"}},
      {{"attn1", "to_v"}, {"self_attn", "v"}},
      {{"attn1", "to_out", "0"}, {"self_attn", "o"}},
      {{"attn1", "norm_q"}, {"self_attn", "norm_q"}},
      {{"attn1", "norm_k"}, {"self_attn", "norm_k"}},
      {{"attn2", "to_q"}, {"cross_attn", "q"}},
      {{"attn2", "to_k"}, {"cross_attn", "k"}},
      {{"attn2", "to_v"}, {"cross_attn", "v"}},
      {{"attn2", "to_out", "0"}, {"cross_attn", "o"}},
      {{"attn2", "norm_q"}, {"cross_attn", "norm_q"}},
      {{"attn2", "norm_k"}, {"cross_attn", "norm_k"}},
      {{"attn2", "add_k_proj"}, {"cross_attn", "k_img"}},
      {{"attn2", "add_v_proj"}, {"cross_attn", "v_img"}},
      {{"attn2", "norm_added_k"}, {"cross_attn", "norm_k_img"}},
      // diffusers' norm2 is the affine cross-attention pre-norm, official norm3. Official norm2 has no parameters,
      // so a `blocks.N.norm2.<param>` key can only be the diffusers one.
      {{"norm2"}, {"norm3"}},
      {{"ffn", "net", "0", "proj"}, {"ffn", "0"}},
      {{"ffn", "net", "2"}, {"ffn", "2"}},
  };
  return r;
}

// diffusers -> official, for top-level names.
const std::vector<Rule>& top_rules() {
  static const std::vector<Rule> r = {
      {{"condition_embedder", "time_embedder", "linear_1"}, {"time_embedding", "0"}},
      {{"condition_embedder", "time_embedder", "linear_2"}, {"time_embedding", "2"}},
      {{"condition_embedder", "time_proj"}, {"time_projection", "1"}},
      {{"condition_embedder", "text_embedder", "linear_1"}, {"text_embedding", "0"}},
      {{"condition_embedder", "text_embedder", "linear_2"}, {"text_embedding", "2"}},
      {{"condition_embedder", "image_embedder", "norm1"}, {"img_emb", "proj", "0"}},
      {{"condition_embedder", "image_embedder", "ff", "net", "0", "proj"}, {"img_emb", "proj", "1"}},
      {{"condition_embedder", "image_embedder", "ff", "net", "2"}, {"img_emb", "proj", "3"}},
      {{"condition_embedder", "image_embedder", "norm2"}, {"img_emb", "proj", "4"}},
      {{"condition_embedder", "image_embedder", "pos_embed"}, {"img_emb", "emb_pos"}},
      {{"scale_shift_table"}, {"head", "modulation"}},
      {{"proj_out"}, {"head", "head"}},
  };
  return r;
}

// Rewrites p[at..] if it starts with one rule's pattern; the rest of the key (".weight", ".int8_weight", ...) stays.
void apply_rules(Parts& p, size_t at, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (p.size() - at < r.from.size()) continue;
    if (!std::equal(r.from.begin(), r.from.end(), p.begin() + long(at))) continue;
    Parts out(p.begin(), p.begin() + long(at));
    out.insert(out.end(), r.to.begin(), r.to.end());
    out.insert(out.end(), p.begin() + long(at + r.from.size()), p.end());
    p.swap(out);
    return;
  }
}

}  // namespace

std::string normalize_dit_key(const std::string& key, bool diffusers_names) {
  Parts p = split_dots(key);
  // Front wrappers, repeatedly (e.g. `module.net._orig_mod.blocks...`); never strip the last component.
  size_t front = 0;
  while (front + 1 < p.size() && is_front_wrapper(p[front])) front++;
  Parts q;
  q.reserve(p.size() - front);
  for (size_t i = front; i < p.size(); i++)
    if (!(is_inner_wrapper(p[i]) && i + 1 < p.size())) q.push_back(p[i]);
  if (q.size() >= 3 && q[0] == "blocks" && is_number(q[1])) {
    if (q[2] == "norm2" && !diffusers_names) return join_dots(q);
    apply_rules(q, 2, block_rules());
  } else if (!q.empty()) {
    apply_rules(q, 0, top_rules());
  }
  return join_dots(q);
}

static bool is_diffusers_key(const std::string& key) {
  for (const char* marker : {".attn1.", ".attn2.", "condition_embedder.", ".ffn.net.", "scale_shift_table", "proj_out."})
    if (key.find(marker) != std::string::npos) return true;
  return false;
}

TensorMap normalize_dit_keys(const TensorMap& m) {
  bool diffusers = false;
  for (auto& kv : m.all()) diffusers = diffusers || is_diffusers_key(kv.first);
  TensorMap out;
  out.source = m.source;
  out.metadata = m.metadata;
  std::map<std::string, std::string> origin;  // new name -> original key
  for (auto& kv : m.all()) {
    std::string n = normalize_dit_key(kv.first, diffusers);
    auto it = origin.find(n);
    if (it != origin.end())
      fail(m.source, cat("keys '", it->second, "' and '", kv.first, "' both map to '", n,
                         "' (a checkpoint holding two copies of the model, e.g. net. and net_ema.?)"));
    origin[n] = kv.first;
    out.put(n, kv.second);
  }
  return out;
}

KeyReport compare_keys(const TensorMap& m, const std::set<std::string>& required,
                       const std::set<std::string>& optional) {
  KeyReport r;
  for (auto& name : required)
    if (!m.has(name)) r.missing.push_back(name);
  for (auto& kv : m.all())
    if (!required.count(kv.first) && !optional.count(kv.first)) r.unused.push_back(kv.first);
  return r;
}

std::vector<std::string> check_keys(const TensorMap& m, const std::set<std::string>& required,
                                    const std::set<std::string>& optional, const std::string& what) {
  KeyReport r = compare_keys(m, required, optional);
  const size_t kShow = 20;
  for (size_t i = 0; i < r.unused.size() && i < kShow; i++)
    log_warn(m.source, ": unused tensor '", r.unused[i], "' (not part of the ", what, ")");
  if (r.unused.size() > kShow) log_warn(m.source, ": ", r.unused.size() - kShow, " more unused tensors");
  if (!r.missing.empty()) {
    std::string list;
    for (size_t i = 0; i < r.missing.size() && i < kShow; i++) list += (i ? ", " : "") + r.missing[i];
    if (r.missing.size() > kShow) list += cat(", ... (", r.missing.size() - kShow, " more)");
    fail(m.source, cat(r.missing.size(), " tensor(s) the ", what, " needs are missing: ", list));
  }
  return r.unused;
}

Tensor patch_embedding_as_linear(const Tensor& w, int64_t dim, int64_t in_dim) {
  std::string subject = w.name().empty() ? std::string("patch_embedding.weight") : w.name();
  const Shape& s = w.shape();
  Tensor lin;
  if (s.size() == 5) {
    TD_CHECK(s[2] == 1 && s[3] == 2 && s[4] == 2, subject,
             "Conv3d patch embedding must have kernel (1, 2, 2), got shape ", shape_str(s));
    lin = w.contiguous().view({s[0], s[1] * 4});
  } else if (s.size() == 2) {
    TD_CHECK(s[1] % 4 == 0, subject, "Linear patch embedding's input size ", s[1], " is not in_dim*4");
    lin = w.contiguous();
  } else {
    fail(subject, cat("expected Conv3d [dim, in_dim, 1, 2, 2] or Linear [dim, in_dim*4], got ", shape_str(s)));
  }
  TD_CHECK(dim <= 0 || lin.size(0) == dim, subject, "patch embedding has ", lin.size(0), " outputs, model dim is ",
           dim);
  TD_CHECK(in_dim <= 0 || lin.size(1) == in_dim * 4, subject, "patch embedding has ", lin.size(1) / 4,
           " input channels, model in_dim is ", in_dim);
  lin.set_name(subject);
  return lin;
}

}  // namespace td
