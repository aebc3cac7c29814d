#include "model/dit/dit_config.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/key_names.h"
#include "io/tensor_map.h"

namespace td {

namespace {

DitConfig make(const char* name, const char* type, int64_t dim, int64_t ffn, int64_t heads, int64_t layers,
               int64_t in_dim, int64_t out_dim) {
  DitConfig c;
  c.name = name;
  c.model_type = type;
  c.dim = dim;
  c.ffn_dim = ffn;
  c.num_heads = heads;
  c.num_layers = layers;
  c.in_dim = in_dim;
  c.out_dim = out_dim;
  return c;
}

// wan_spec.md §1.1. Wan2.2 A14B: each expert is one of these; Wan2.2 I2V has no CLIP branch.
const std::vector<DitConfig>& presets() {
  static const std::vector<DitConfig> p = {
      make("wan2.1-t2v-1.3b", "t2v", 1536, 8960, 12, 30, 16, 16),
      make("wan2.1-t2v-14b", "t2v", 5120, 13824, 40, 40, 16, 16),
      make("wan2.2-t2v-a14b", "t2v", 5120, 13824, 40, 40, 16, 16),
      make("wan2.2-i2v-a14b", "i2v", 5120, 13824, 40, 40, 36, 16),
  };
  return p;
}

std::string dir_of(const std::string& path) {
  size_t s = path.find_last_of('/');
  return s == std::string::npos ? std::string(".") : path.substr(0, s);
}

bool file_exists(const std::string& p) {
  std::ifstream f(p);
  return f.good();
}

bool same_shape(const DitConfig& a, const DitConfig& b) {
  return a.model_type == b.model_type && a.dim == b.dim && a.ffn_dim == b.ffn_dim && a.num_heads == b.num_heads &&
         a.num_layers == b.num_layers && a.in_dim == b.in_dim && a.out_dim == b.out_dim &&
         a.text_dim == b.text_dim && a.freq_dim == b.freq_dim && a.text_len == b.text_len;
}

}  // namespace

void DitConfig::validate(const std::string& subject) const {
  TD_CHECK(model_type == "t2v" || model_type == "i2v" || model_type == "ti2v", subject, "model_type '", model_type,
           "' is not supported (t2v, i2v, ti2v)");
  TD_CHECK(dim > 0 && ffn_dim > 0 && num_heads > 0 && num_layers > 0 && in_dim > 0 && out_dim > 0 && text_len > 0 &&
               text_dim > 0 && freq_dim > 0,
           subject, "all sizes must be positive (", summary(), ")");
  TD_CHECK(dim % num_heads == 0, subject, "dim ", dim, " is not a multiple of num_heads ", num_heads);
  TD_CHECK(head_dim() % 2 == 0 && head_dim() >= 6, subject, "head_dim ", head_dim(), " must be even and >= 6 (RoPE)");
  TD_CHECK(freq_dim % 2 == 0, subject, "freq_dim ", freq_dim, " must be even");
  TD_CHECK(patch[0] == 1 && patch[1] == 2 && patch[2] == 2, subject, "patch_size (", patch[0], ",", patch[1], ",",
           patch[2], ") is not supported; only (1,2,2)");
  TD_CHECK(eps > 0.f, subject, "eps must be positive");
  if (model_type != "t2v")
    TD_CHECK(in_dim > out_dim, subject, model_type, " model needs in_dim > out_dim (noise + y channels), got in_dim ",
             in_dim, ", out_dim ", out_dim);
}

std::string DitConfig::summary() const {
  return cat(name, ": ", model_type, " dim ", dim, " ffn ", ffn_dim, " heads ", num_heads, "x", head_dim(), " layers ",
             num_layers, " in ", in_dim, " out ", out_dim, " text ", text_len, "x", text_dim, " freq ", freq_dim,
             " eps ", eps);
}

std::vector<std::string> DitConfig::preset_names() {
  std::vector<std::string> v;
  for (auto& p : presets()) v.push_back(p.name);
  return v;
}

DitConfig DitConfig::preset(const std::string& name) {
  std::string lower;
  for (char c : name) lower.push_back(char(std::tolower((unsigned char)c)));
  for (auto& p : presets())
    if (p.name == lower) return p;
  std::string all;
  for (auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
  fail("--config", cat("'", name, "' is neither a preset (", all, ") nor a readable file"));
}

DitConfig DitConfig::from_json_text(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(source, cat("not valid JSON: ", e.what()));
  }
  TD_CHECK(j.is_object(), source, "config must be a JSON object");
  DitConfig c;
  c.name = source;
  auto get_int = [&](const char* key, int64_t* out) {
    if (!j.contains(key)) return false;
    TD_CHECK(j[key].is_number_integer(), source, "'", key, "' must be an integer");
    *out = j[key].get<int64_t>();
    return true;
  };
  const bool diffusers = j.contains("num_attention_heads") || j.contains("attention_head_dim");
  if (diffusers) {  // WanTransformer3DModel's config.json
    int64_t heads = 0, hd = 0;
    TD_CHECK(get_int("num_attention_heads", &heads) && get_int("attention_head_dim", &hd), source,
             "diffusers config needs num_attention_heads and attention_head_dim");
    c.num_heads = heads;
    c.dim = heads * hd;
    get_int("in_channels", &c.in_dim);
    get_int("out_channels", &c.out_dim);
    get_int("ffn_dim", &c.ffn_dim);
    get_int("num_layers", &c.num_layers);
    get_int("text_dim", &c.text_dim);
    get_int("freq_dim", &c.freq_dim);
    if (j.contains("image_dim") && !j["image_dim"].is_null())
      fail(source, "Wan2.1 I2V models with a CLIP image branch (image_dim) are not supported");
    c.model_type = c.in_dim == 16 ? "t2v" : (c.in_dim == 48 ? "ti2v" : "i2v");
  } else {
    static const char* required[] = {"dim", "ffn_dim", "num_heads", "num_layers"};
    for (const char* k : required) TD_CHECK(j.contains(k), source, "config has no '", k, "'");
    get_int("dim", &c.dim);
    get_int("ffn_dim", &c.ffn_dim);
    get_int("num_heads", &c.num_heads);
    get_int("num_layers", &c.num_layers);
    get_int("in_dim", &c.in_dim);
    get_int("out_dim", &c.out_dim);
    get_int("text_len", &c.text_len);
    get_int("text_dim", &c.text_dim);
    get_int("freq_dim", &c.freq_dim);
    if (j.contains("model_type")) {
      TD_CHECK(j["model_type"].is_string(), source, "'model_type' must be a string");
      c.model_type = j["model_type"].get<std::string>();
    }
    if (c.model_type == "flf2v") fail(source, "flf2v models (CLIP image branch) are not supported");
  }
  if (j.contains("eps")) {
    TD_CHECK(j["eps"].is_number(), source, "'eps' must be a number");
    c.eps = j["eps"].get<float>();
  }
  if (j.contains("patch_size")) {
    auto& p = j["patch_size"];
    TD_CHECK(p.is_array() && p.size() == 3, source, "'patch_size' must be a list of 3 integers");
    for (int i = 0; i < 3; i++) {
      TD_CHECK(p[i].is_number_integer(), source, "'patch_size' must be a list of 3 integers");
      c.patch[i] = p[i].get<int64_t>();
    }
  }
  for (auto& p : presets())
    if (same_shape(p, c)) c.name = p.name;
  c.validate(source);
  return c;
}

DitConfig DitConfig::from_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TD_CHECK(f.good(), path, "cannot open config file");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json_text(ss.str(), path);
}

DitConfig DitConfig::infer(const TensorMap& m) {
  const std::string& src = m.source;
  DitConfig c;
  c.name = src;
  const Tensor* pe = m.find("patch_embedding.weight");
  TD_CHECK(pe, src, "cannot infer the DiT config: no patch_embedding.weight (pass --config)");
  Tensor pel = patch_embedding_as_linear(*pe);
  c.dim = pel.size(0);
  TD_CHECK(pel.size(1) % 4 == 0, src, "patch_embedding.weight has ", pel.size(1), " inputs, not a multiple of 4");
  c.in_dim = pel.size(1) / 4;
  auto first_dim = [&](const std::string& base, int d) -> int64_t {
    const Tensor* t = m.find(base + ".weight");
    if (!t) t = m.find(base + ".int8_weight");
    TD_CHECK(t && t->dim() == 2, src, "cannot infer the DiT config: no 2-D ", base, ".weight (pass --config)");
    return t->size(d);
  };
  c.ffn_dim = first_dim("blocks.0.ffn.0", 0);
  c.text_dim = first_dim("text_embedding.0", 1);
  c.freq_dim = first_dim("time_embedding.0", 1);
  const int64_t head_out = first_dim("head.head", 0);
  TD_CHECK(head_out % 4 == 0, src, "head.head.weight has ", head_out, " outputs, not a multiple of 4");
  c.out_dim = head_out / 4;
  int64_t layers = 0;
  static const std::regex block_re("^blocks\\.([0-9]+)\\.");
  for (auto& kv : m.all()) {
    std::smatch mt;
    if (std::regex_search(kv.first, mt, block_re)) layers = std::max<int64_t>(layers, std::stoll(mt[1].str()) + 1);
  }
  c.num_layers = layers;
  TD_CHECK(c.dim % 128 == 0, src, "cannot infer num_heads: dim ", c.dim,
           " is not a multiple of head_dim 128 (pass --config with a config.json)");
  c.num_heads = c.dim / 128;
  if (m.find("img_emb.proj.0.weight") || m.find("blocks.0.cross_attn.k_img.weight"))
    fail(src, "this is a Wan2.1 I2V/FLF2V checkpoint with a CLIP image branch, which is not supported");
  c.model_type = c.in_dim == c.out_dim ? "t2v" : (c.in_dim == 48 ? "ti2v" : "i2v");
  for (auto& p : presets())
    if (same_shape(p, c)) c.name = p.name;
  c.validate(src);
  return c;
}

DitConfig DitConfig::resolve(const std::string& arg, const std::string& weights, const TensorMap* normalized) {
  if (!arg.empty()) {
    if (file_exists(arg)) return from_json_file(arg);
    return preset(arg);
  }
  const std::string beside = dir_of(weights) + "/config.json";
  if (!weights.empty() && file_exists(beside)) {
    log_info("DiT config from ", beside);
    return from_json_file(beside);
  }
  if (normalized) {
    auto it = normalized->metadata.find("config");
    if (it != normalized->metadata.end()) {
      try {
        return from_json_text(it->second, normalized->source + " (metadata 'config')");
      } catch (const Error& e) {
        log_warn("ignoring the checkpoint's metadata config: ", e.what());
      }
    }
    DitConfig c = infer(*normalized);
    log_info("DiT config inferred from tensor shapes: ", c.summary());
    return c;
  }
  fail("--config", cat("no --config given, no config.json next to ", weights, ", and no tensors to infer from"));
}

}  // namespace td
