#include "model/t5/t5_encoder.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

namespace td {

// ---------------------------------------------------------------- config

T5Config T5Config::from_json_file(const std::string& path) {
  std::ifstream f(path);
  TD_CHECK(f.good(), path, "cannot open the T5 config file");
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    fail(path, cat("not valid JSON: ", e.what()));
  }
  TD_CHECK(j.is_object(), path, "the T5 config must be a JSON object");
  T5Config c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    auto as_int = [&]() -> int64_t {
      TD_CHECK(v.is_number_integer(), path, "'", k, "' must be an integer");
      return v.get<int64_t>();
    };
    if (k == "vocab" || k == "vocab_size") c.vocab = as_int();
    else if (k == "dim") c.dim = as_int();
    else if (k == "dim_attn") c.dim_attn = as_int();
    else if (k == "dim_ffn") c.dim_ffn = as_int();
    else if (k == "num_heads") c.num_heads = int(as_int());
    else if (k == "num_layers" || k == "encoder_layers") c.num_layers = int(as_int());
    else if (k == "num_buckets") c.num_buckets = int(as_int());
    else if (k == "shared_pos") {
      TD_CHECK(v.is_boolean(), path, "'shared_pos' must be true or false");
      c.shared_pos = v.get<bool>();
    } else if (k == "dropout" || k == "decoder_layers") {
      // training-only / decoder arguments of the official constructor
    } else {
      fail(path, cat("unknown key '", k, "' (expected the T5Encoder arguments vocab, dim, dim_attn, dim_ffn, ",
                     "num_heads, num_layers, num_buckets, shared_pos)"));
    }
  }
  c.validate(path);
  return c;
}

void T5Config::validate(const std::string& what) const {
  TD_CHECK(vocab > 0 && dim > 0 && dim_attn > 0 && dim_ffn > 0 && num_heads > 0 && num_layers > 0, what,
           "all T5 sizes must be positive: ", describe());
  TD_CHECK(dim_attn % num_heads == 0, what, "dim_attn ", dim_attn, " is not a multiple of num_heads ", num_heads);
  TD_CHECK(num_buckets >= 4 && num_buckets % 2 == 0, what, "num_buckets must be even and >= 4, got ", num_buckets);
  TD_CHECK(max_dist > num_buckets / 4, what, "max_dist ", max_dist, " too small for ", num_buckets, " buckets");
}

std::string T5Config::describe() const {
  return cat("vocab ", vocab, ", dim ", dim, ", dim_attn ", dim_attn, ", dim_ffn ", dim_ffn, ", heads ", num_heads,
             ", layers ", num_layers, ", buckets ", num_buckets);
}

// ---------------------------------------------------------------- keys

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// "encoder.block.<i>.<rest>" -> i and rest.
bool split_block(const std::string& key, const std::string& prefix, std::string* idx, std::string* rest) {
  if (!starts_with(key, prefix)) return false;
  size_t dot = key.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  *idx = key.substr(prefix.size(), dot - prefix.size());
  for (char ch : *idx)
    if (ch < '0' || ch > '9') return false;
  *rest = key.substr(dot + 1);
  return true;
}

}  // namespace

std::string normalize_t5_key(const std::string& key_in) {
  std::string key = key_in;
  for (bool again = true; again;) {
    again = false;
    for (const char* p : {"module.", "model.", "text_encoder.", "t5.", "umt5."}) {
      if (starts_with(key, p)) {
        key = key.substr(std::strlen(p));
        again = true;
      }
    }
  }
  if (key == "shared.weight" || key == "encoder.embed_tokens.weight") return "token_embedding.weight";
  if (key == "encoder.final_layer_norm.weight") return "norm.weight";
  std::string i, rest;
  if (split_block(key, "encoder.block.", &i, &rest)) {
    static const std::map<std::string, std::string> m = {
        {"layer.0.layer_norm.weight", "norm1.weight"},
        {"layer.0.SelfAttention.q.weight", "attn.q.weight"},
        {"layer.0.SelfAttention.k.weight", "attn.k.weight"},
        {"layer.0.SelfAttention.v.weight", "attn.v.weight"},
        {"layer.0.SelfAttention.o.weight", "attn.o.weight"},
        {"layer.0.SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"},
        {"layer.1.layer_norm.weight", "norm2.weight"},
        {"layer.1.DenseReluDense.wi_0.weight", "ffn.gate.0.weight"},
        {"layer.1.DenseReluDense.wi_1.weight", "ffn.fc1.weight"},
        {"layer.1.DenseReluDense.wo.weight", "ffn.fc2.weight"},
    };
    auto it = m.find(rest);
    if (it != m.end()) return "blocks." + i + "." + it->second;
  }
  return key;
}

float t5_hash_uniform(uint64_t seed, uint64_t index, float bound) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  float u = float(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return (2.f * u - 1.f) * bound;
}

// ---------------------------------------------------------------- loading

namespace {

int64_t int8_group_for(int64_t K, int64_t want) { return (want > 0 && K % want == 0) ? want : K; }

cpu::T5Matrix host_matrix(const Tensor& w, const T5Options& opt) {
  cpu::T5Matrix m;
  if (opt.int8 && opt.device == Device::CPU) return cpu::t5_quantize_int8(w, int8_group_for(w.size(1), opt.int8_group));
  m.w = w;
  return m;
}

}  // namespace

std::unique_ptr<T5Encoder> T5Encoder::load(const std::string& path, const T5Config& cfg, const T5Options& opt) {
  TensorMap m = load_checkpoint(path);
  if (m.source.empty()) m.source = path;
  return from_tensors(m, cfg, opt);
}

std::unique_ptr<T5Encoder> T5Encoder::from_tensors(const TensorMap& raw, const T5Config& cfg, const T5Options& opt) {
  cfg.validate(raw.source);
  std::unique_ptr<T5Encoder> enc(new T5Encoder(cfg, opt));
  std::map<std::string, Tensor> t;
  std::vector<std::string> unused;
  for (const auto& kv : raw.all()) {
    std::string k = normalize_t5_key(kv.first);
    if (t.count(k)) continue;  // HF stores the tied embedding twice (shared / encoder.embed_tokens)
    t[k] = kv.second;
  }
  auto take = [&](const std::string& name, const Shape& shape) -> Tensor {
    auto it = t.find(name);
    TD_CHECK(it != t.end(), raw.source, "missing tensor '", name, "' (a umT5 encoder checkpoint in Wan or HF naming ",
             "was expected; model config: ", cfg.describe(), ")");
    Tensor x = it->second;
    TD_CHECK(dtype_is_float(x.dtype()) && x.dtype() != DType::F8E4M3 && x.dtype() != DType::F8E5M2, raw.source,
             "tensor '", name, "' has dtype ", dtype_name(x.dtype()), "; f32/bf16/f16 weights are supported");
    TD_CHECK(x.shape() == shape, raw.source, "tensor '", name, "' is ", shape_str(x.shape()), ", expected ",
             shape_str(shape), " for ", cfg.describe(),
             name == "token_embedding.weight" ? " (pass --config for a model other than umT5-XXL)" : "");
    t.erase(it);
    x = x.contiguous();
    x.set_name(cat(raw.source, ":", name));
    return x;
  };
  const int64_t D = cfg.dim, A = cfg.dim_attn, F = cfg.dim_ffn;
  enc->embedding_ = take("token_embedding.weight", {cfg.vocab, D});
  Tensor shared_pos;
  if (cfg.shared_pos) shared_pos = take("pos_embedding.embedding.weight", {cfg.num_buckets, cfg.num_heads});
  enc->layers_.resize(size_t(cfg.num_layers));
  for (int l = 0; l < cfg.num_layers; l++) {
    std::string p = cat("blocks.", l, ".");
    Layer& L = enc->layers_[size_t(l)];
    L.norm1 = take(p + "norm1.weight", {D});
    L.norm2 = take(p + "norm2.weight", {D});
    L.pos = cfg.shared_pos ? shared_pos : take(p + "pos_embedding.embedding.weight", {cfg.num_buckets, cfg.num_heads});
    L.q = host_matrix(take(p + "attn.q.weight", {A, D}), opt);
    L.k = host_matrix(take(p + "attn.k.weight", {A, D}), opt);
    L.v = host_matrix(take(p + "attn.v.weight", {A, D}), opt);
    L.o = host_matrix(take(p + "attn.o.weight", {D, A}), opt);
    L.gate = host_matrix(take(p + "ffn.gate.0.weight", {F, D}), opt);
    L.fc1 = host_matrix(take(p + "ffn.fc1.weight", {F, D}), opt);
    L.fc2 = host_matrix(take(p + "ffn.fc2.weight", {D, F}), opt);
  }
  enc->final_norm_ = take("norm.weight", {D});
  if (!t.empty()) {
    int shown = 0;
    for (const auto& kv : t)
      if (shown++ < 10) log_warn(raw.source, ": unused tensor '", kv.first, "'");
    if (t.size() > 10) log_warn(raw.source, ": ", t.size() - 10, " more unused tensors");
  }
  if (opt.device == Device::CUDA) enc->upload_cuda();
  return enc;
}

std::unique_ptr<T5Encoder> T5Encoder::random(const T5Config& cfg, const T5Options& opt, uint64_t seed) {
  cfg.validate("random T5 weights");
  std::unique_ptr<T5Encoder> enc(new T5Encoder(cfg, opt));
  enc->random_embedding_ = true;
  enc->random_seed_ = seed;
  if (opt.device == Device::CUDA) {
    enc->upload_cuda();  // with no host weights loaded, this generates them on the device
    return enc;
  }
  const int64_t D = cfg.dim, A = cfg.dim_attn, F = cfg.dim_ffn;
  uint64_t stream = 1;
  auto gen = [&](const Shape& s, float stdev) {
    Tensor x = Tensor::empty(s, DType::BF16);
    uint16_t* p = x.ptr<uint16_t>();
    const uint64_t sd = seed + 0x1000 * stream++;
    const float bound = stdev * std::sqrt(3.f);
    parallel_for(x.numel(), [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) p[i] = f32_to_bf16(t5_hash_uniform(sd, uint64_t(i), bound));
    }, 1 << 14);
    return x;
  };
  auto ones = [&](int64_t n) { return Tensor::from_f32({n}, std::vector<float>(size_t(n), 1.f)); };
  enc->layers_.resize(size_t(cfg.num_layers));
  for (auto& L : enc->layers_) {
    L.norm1 = ones(D);
    L.norm2 = ones(D);
    L.pos = gen({cfg.num_buckets, cfg.num_heads}, float(std::pow(2.0 * cfg.num_buckets * cfg.num_heads, -0.5)));
    L.q = host_matrix(gen({A, D}, float(std::pow(double(D) * double(A), -0.5))), opt);
    L.k = host_matrix(gen({A, D}, float(std::pow(double(D), -0.5))), opt);
    L.v = host_matrix(gen({A, D}, float(std::pow(double(D), -0.5))), opt);
    L.o = host_matrix(gen({D, A}, float(std::pow(double(cfg.num_heads) * double(A), -0.5))), opt);
    L.gate = host_matrix(gen({F, D}, float(std::pow(double(D), -0.5))), opt);
    L.fc1 = host_matrix(gen({F, D}, float(std::pow(double(D), -0.5))), opt);
    L.fc2 = host_matrix(gen({D, F}, float(std::pow(double(F), -0.5))), opt);
  }
  enc->final_norm_ = ones(D);
  return enc;
}

T5Encoder::~T5Encoder() = default;

size_t T5Encoder::device_weight_bytes() const {
  size_t b = 0;
  for (const auto& L : layers_)
    for (const cpu::T5Matrix* m : {&L.qkv, &L.o_d, &L.gatefc1, &L.fc2_d})
      if (m->w.defined() && m->w.is_cuda()) b += m->bytes();
  return b;
}

// ---------------------------------------------------------------- forward

Tensor T5Encoder::embed(const std::vector<int32_t>& ids) const {
  const int64_t L = int64_t(ids.size()), D = cfg_.dim;
  Tensor x = Tensor::empty({L, D}, DType::F32);
  for (int64_t i = 0; i < L; i++) {
    int32_t id = ids[size_t(i)];
    TD_CHECK(id >= 0 && id < cfg_.vocab, "token ids", "id ", id, " at position ", i, " is outside the embedding table (",
             cfg_.vocab, " rows)");
    float* row = x.ptr<float>() + i * D;
    if (random_embedding_) {
      for (int64_t j = 0; j < D; j++) row[j] = t5_hash_uniform(random_seed_, uint64_t(id) * uint64_t(D) + uint64_t(j), std::sqrt(3.f));
    } else {
      const char* src = static_cast<const char*>(embedding_.data()) + size_t(id) * size_t(D) * dtype_size(embedding_.dtype());
      convert_to_f32(src, embedding_.dtype(), row, size_t(D));
    }
  }
  return x;
}

Tensor T5Encoder::encode(const std::vector<int32_t>& ids) {
  TD_CHECK(!ids.empty(), "token ids", "nothing to encode (a tokenized prompt always ends in '</s>')");
  return opt_.device == Device::CUDA ? forward_cuda(ids, nullptr) : forward_cpu(ids, nullptr);
}

Tensor T5Encoder::encode_padded(const std::vector<int32_t>& ids, const std::vector<int32_t>& mask) {
  TD_CHECK(!ids.empty() && ids.size() == mask.size(), "token ids", "ids (", ids.size(), ") and mask (", mask.size(),
           ") must be non-empty and of equal length");
  bool any = false;
  for (int32_t m : mask) any |= m != 0;
  TD_CHECK(any, "attention mask", "every position is padding");
  return opt_.device == Device::CUDA ? forward_cuda(ids, mask.data()) : forward_cpu(ids, mask.data());
}

Tensor T5Encoder::forward_cpu(const std::vector<int32_t>& ids, const int32_t* mask) {
  const int64_t L = int64_t(ids.size()), D = cfg_.dim, A = cfg_.dim_attn, F = cfg_.dim_ffn;
  Tensor x = embed(ids);
  Tensor xn = Tensor::empty({L, D}, DType::F32);
  Tensor q = Tensor::empty({L, A}, DType::F32), k = Tensor::empty({L, A}, DType::F32), v = Tensor::empty({L, A}, DType::F32);
  Tensor att = Tensor::empty({L, A}, DType::F32), y = Tensor::empty({L, D}, DType::F32);
  Tensor g = Tensor::empty({L, F}, DType::F32), h = Tensor::empty({L, F}, DType::F32);
  auto add = [&](Tensor& a, const Tensor& b) {
    float* ap = a.ptr<float>();
    const float* bp = b.ptr<float>();
    for (int64_t i = 0; i < a.numel(); i++) ap[i] += bp[i];
  };
  for (auto& Ly : layers_) {
    cpu::t5_rmsnorm(x, Ly.norm1, cfg_.eps, xn);
    cpu::t5_linear(xn, Ly.q, q);
    cpu::t5_linear(xn, Ly.k, k);
    cpu::t5_linear(xn, Ly.v, v);
    cpu::t5_attention(q, k, v, Ly.pos, mask, cfg_.num_heads, cfg_.max_dist, att);
    cpu::t5_linear(att, Ly.o, y);
    add(x, y);
    cpu::t5_rmsnorm(x, Ly.norm2, cfg_.eps, xn);
    cpu::t5_linear(xn, Ly.gate, g);
    cpu::t5_linear(xn, Ly.fc1, h);
    cpu::t5_gated_gelu(h, g);
    cpu::t5_linear(h, Ly.fc2, y);
    add(x, y);
  }
  Tensor out = Tensor::empty({L, D}, DType::F32);
  cpu::t5_rmsnorm(x, final_norm_, cfg_.eps, out);
  return out;
}

#ifndef TD_WITH_CUDA
void T5Encoder::upload_cuda() { fail("--device", "cuda was requested for the T5 encoder but this build has no CUDA backend"); }
Tensor T5Encoder::forward_cuda(const std::vector<int32_t>&, const int32_t*) {
  fail("--device", "cuda was requested for the T5 encoder but this build has no CUDA backend");
}
#endif

}  // namespace td
