// The Wan DiT forward. Device-generic: all tensor math goes through ops::*, plus host code for the time sinusoid,
// patchify/unpatchify and the padding of the text context. Official semantics in wan_spec.md §1.2-1.3.
#include "model/dit/dit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "io/key_names.h"
#include "io/tensor_map.h"
#include "model/dit/dit_weights.h"
#include "ops/sla.h"
#include "ops/w8a8.h"
#if TD_WITH_CUDA
#include "cuda/dit_runtime.h"
#endif

namespace td {

LinearMode parse_linear_mode(const std::string& s) {
  if (s == "auto" || s.empty()) return LinearMode::Auto;
  if (s == "bf16" || s == "float" || s == "f32") return LinearMode::Float;
  if (s == "w8a8" || s == "int8") return LinearMode::W8A8;
  fail("--linear", cat("unknown mode '", s, "' (expected bf16 or w8a8)"));
}

const char* linear_mode_name(LinearMode m) {
  switch (m) {
    case LinearMode::Auto: return "auto";
    case LinearMode::Float: return "bf16";
    case LinearMode::W8A8: return "w8a8";
  }
  return "?";
}

const char* dit_op_kind_name(DitOpKind k) {
  switch (k) {
    case DitOpKind::Attention: return "attention";
    case DitOpKind::Linear: return "linear";
    case DitOpKind::Other: return "norm/other";
  }
  return "?";
}

void SyncProfiler::begin(DitOpKind) {
  if (cuda_available()) device_synchronize();
  t0_ = monotonic_seconds();
}

void SyncProfiler::end(DitOpKind kind) {
  if (cuda_available()) device_synchronize();
  seconds[int(kind)] += monotonic_seconds() - t0_;
}

// Activation buffers, sized for one token count and reused across blocks and calls.
struct DitWorkspace {
  int64_t L = -1;
  Tensor patches;          // act [L, in_dim*4]
  Tensor x;                // f32 [L, D], the residual stream
  Tensor h, q, k, v, o, y; // act [L, D] (y aliases h; q/k/v/o share an arena with f, see ensure_workspace)
  Tensor f;                // act [L, ffn] (bf16/f32 blocks; W8A8 blocks use af)
  Tensor head_out;         // f32 [L, out_dim*4]
  Tensor ctx_in;           // act [text_len, text_dim]
  int64_t ctx_zero_from = -1;  // ctx_in's rows from here on are known to be zero (-1: nothing staged yet)
  Tensor ctx_mid, ctx;     // act [text_len, D]
  Tensor ck, cv;           // act [text_len, D] (with context reuse: views of ck_all / cv_all for the current block)
  Tensor ck_all, cv_all;   // act [layers, text_len, D]: every block's k/v of the context, when it is reused
  bool cache_ctx = false;  // this forward keeps the context's k/v per block
  bool reuse_ctx = false;  // ... and they, ctx and a_ctx, are still those of ctx_key: skip the context work
  bool ctx_valid = false;  // ck_all / cv_all hold the k/v of ctx_key
  const void* ctx_key = nullptr;
  Shape ctx_key_shape;
  DType ctx_key_dtype = DType::F32;
  Tensor mod;              // f32 [layers, 6, D] on the device: block modulation + time projection
  Tensor head_mod;         // f32 [2, D] on the device
  ops::Int8Act a, a_ctx;   // quantized activations (W8A8 blocks): tokens and text context
  ops::Int8Act af;         // W8A8: ffn.0's GELU output, quantized in its GEMM epilogue (in the q/k/v/o arena)
  bool have_t = false;
  float t = 0.f;           // the timestep `mod`/`head_mod` were computed for
  // CUDA graph state (DitOptions::cuda_graph): the grid the last eager warm-up ran at, and the graph captured for
  // `graph_grid`. Declared last so the graph is destroyed before the buffers its kernels point into.
  int64_t warm_grid[3] = {-1, -1, -1};
  int64_t graph_grid[3] = {-1, -1, -1};
  std::shared_ptr<void> graph;  // cuda::DitGraph (deleter bound in CUDA code)
};

struct DitBinder {
  static std::unique_ptr<WanDiT> make(const DitConfig& c, const DitOptions& o) {
    return std::unique_ptr<WanDiT>(new WanDiT(c, o));
  }
};

WanDiT::WanDiT(const DitConfig& c, const DitOptions& o)
    : config_(c), opts_(o), w_(new DitWeights), ws_(new DitWorkspace) {}
WanDiT::~WanDiT() = default;

bool WanDiT::quantized() const { return w_->quantized; }
bool WanDiT::graph_captured() const { return ws_->graph != nullptr; }
void WanDiT::set_cuda_graph(bool on) {
  opts_.cuda_graph = on;
  if (!on) ws_->graph.reset();
}
size_t WanDiT::weight_bytes() const { return w_->device_bytes; }

namespace {

void check_device(Device d) {
  if (d == Device::CUDA)
    TD_CHECK(cuda_available(), "--device cuda", "no usable CUDA device (or this build has no CUDA backend)");
}

// Required/optional official names for a config, given the form (float or W8A8) each block linear has in `m`.
void expected_keys(const DitConfig& c, const TensorMap& m, std::set<std::string>* req, std::set<std::string>* opt) {
  for (const std::string& base : dit_linear_names(c)) {
    req->insert(base + ".bias");
    if (dit_is_block_linear(base) && m.has(base + ".int8_weight")) {
      req->insert(base + ".int8_weight");
      req->insert(base + ".scale");
    } else {
      req->insert(base + ".weight");
    }
  }
  req->insert("head.modulation");
  for (int i = 0; i < c.num_layers; i++) {
    const std::string b = cat("blocks.", i, ".");
    for (const char* n : {"modulation", "self_attn.norm_q.weight", "self_attn.norm_k.weight",
                          "cross_attn.norm_q.weight", "cross_attn.norm_k.weight", "norm3.weight", "norm3.bias"})
      req->insert(b + n);
    opt->insert(b + "self_attn.attn_op.local_attn.proj_l.weight");
    opt->insert(b + "self_attn.attn_op.local_attn.proj_l.bias");
  }
}

LinearMode resolve_mode(LinearMode m, bool checkpoint_quant) {
  if (m != LinearMode::Auto) return m;
  return checkpoint_quant ? LinearMode::W8A8 : LinearMode::Float;
}

// splitmix64: a counter-based generator, so random weights are the same for any thread count.
inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Tensor random_tensor(const std::string& name, const Shape& shape, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : name) h = (h ^ uint8_t(ch)) * 1099511628211ull;
  const uint64_t base = mix64(seed ^ h);
  auto ends = [&](const char* s) {
    size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  // Magnitudes that keep activations O(1) through many blocks: unit-variance fan-in for weights, small biases,
  // norm weights near 1, modulation ~ 1/sqrt(D) as the official init.
  float center = 0.f, amp = 0.02f;
  if (ends(".weight") && shape.size() == 2) {
    amp = float(std::sqrt(3.0 / double(shape[1])));
  } else if (ends("norm_q.weight") || ends("norm_k.weight") || ends("norm3.weight")) {
    center = 1.f;
    amp = 0.1f;
  } else if (ends("modulation")) {
    amp = float(std::sqrt(3.0 / double(shape.back())));
  }
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.ptr<float>();
  parallel_for(
      t.numel(),
      [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; i++) {
          const double u = double(mix64(base + uint64_t(i)) >> 11) * (1.0 / 9007199254740992.0);  // [0,1)
          p[i] = center + amp * float(2.0 * u - 1.0);
        }
      },
      1 << 16);
  return t;
}

}  // namespace

std::unique_ptr<WanDiT> WanDiT::from_tensors(const TensorMap& raw, const DitConfig& c, const DitOptions& o) {
  c.validate("--config");
  check_device(o.device);
  TensorMap m = normalize_dit_keys(raw);
  // A config that does not fit the checkpoint is the likely mistake; say so before listing hundreds of keys.
  if (const Tensor* pe = m.find("patch_embedding.weight")) {
    Tensor pl = patch_embedding_as_linear(*pe);
    TD_CHECK(pl.size(0) == c.dim && pl.size(1) == c.in_dim * 4, m.source, "patch_embedding.weight ",
             shape_str(pe->shape()), " does not fit the config (", c.summary(), "); check --config");
  }
  TD_CHECK(!m.has("img_emb.proj.0.weight") && !m.has("blocks.0.cross_attn.k_img.weight"), m.source,
           "this is a Wan2.1 I2V/FLF2V checkpoint with a CLIP image branch (img_emb, k_img/v_img), which is not "
           "supported; Wan2.2 I2V (no CLIP) is");
  std::set<std::string> req, opt;
  expected_keys(c, m, &req, &opt);
  check_keys(m, req, opt, "Wan DiT");
  const bool ck_quant = m.has("blocks.0.self_attn.q.int8_weight");
  auto dit = DitBinder::make(c, o);
  const LinearMode mode = resolve_mode(o.linear, ck_quant);
  dit->opts_.linear = mode;
  DitWeightSource src;
  src.what = m.source;
  src.has = [&](const std::string& n) { return m.has(n); };
  src.get = [&](const std::string& n, const Shape& shape) -> Tensor {
    const Tensor& t = m.get(n);
    if (n == "patch_embedding.weight") return patch_embedding_as_linear(t, shape[0], shape[1] / 4);
    TD_CHECK(t.shape() == shape, m.source, "tensor '", n, "' has shape ", shape_str(t.shape()), ", expected ",
             shape_str(shape), " for ", c.summary());
    TD_CHECK(dtype_is_float(t.dtype()) || t.dtype() == DType::I8, m.source, "tensor '", n, "' has dtype ",
             dtype_name(t.dtype()), ", expected a float type");
    return t;
  };
  bind_dit_weights(c, dit->opts_, mode, src, *dit->w_);
  log_info("Wan DiT loaded (", c.summary(), "; ", device_name(o.device), ", linears ", linear_mode_name(mode),
           ", ", dit->w_->device_bytes / (1 << 20), " MiB of weights)");
  return dit;
}

std::unique_ptr<WanDiT> WanDiT::load(const std::string& path, const DitConfig& c, const DitOptions& o) {
  TensorMap m = load_checkpoint(path);
  return from_tensors(m, c, o);
}

std::unique_ptr<WanDiT> WanDiT::random(const DitConfig& c, const DitOptions& o, uint64_t seed) {
  c.validate("--config");
  check_device(o.device);
  auto dit = DitBinder::make(c, o);
  const LinearMode mode = resolve_mode(o.linear, false);
  dit->opts_.linear = mode;
  const bool proj_l = o.attention.mode != AttentionMode::Dense;
  DitWeightSource src;
  src.what = "random weights";
  src.has = [&](const std::string& n) {
    if (n.find(".int8_weight") != std::string::npos || n.find(".scale") != std::string::npos) return false;
    if (n.find("proj_l") != std::string::npos) return proj_l;
    return true;
  };
  src.get = [&](const std::string& n, const Shape& shape) { return random_tensor(n, shape, seed); };
  bind_dit_weights(c, dit->opts_, mode, src, *dit->w_);
  return dit;
}

// ---------------------------------------------------------------------------------------------------------------
// The forward.

class DitRunner {
 public:
  explicit DitRunner(WanDiT& m) : m_(m), c_(m.config_), w_(*m.w_), ws_(*m.ws_), dev_(m.opts_.device) {}

  // Returns f32 [out_dim, F, H, W]: on the host, or with `on_device` on the model's device.
  Tensor run(const Tensor& x, float t, const Tensor& context, const Tensor* y, bool on_device);

 private:
  struct Scope {
    DitProfiler* p;
    DitOpKind k;
    const char* label;
    Scope(DitProfiler* p_, DitOpKind k_, const char* label_ = "") : p(p_), k(k_), label(label_) {
      if (p) p->begin_op(k, label);
    }
    ~Scope() {
      if (p) p->end_op(k, label);
    }
  };

  DType act() const { return dev_ == Device::CUDA ? DType::BF16 : DType::F32; }
  Tensor alloc(const Shape& s, DType dt) const { return Tensor::empty(s, dt, dev_); }
  // Host f32 -> a workspace tensor of the activation dtype on the device.
  void upload(const Tensor& host_f32, Tensor& dst) const {
    if (dst.dtype() == DType::F32 && dev_ == Device::CPU) {
      dst.copy_from(host_f32);
      return;
    }
    dst.copy_from(dst.dtype() == DType::F32 ? host_f32 : host_f32.to(dst.dtype()));
  }

  void linear(const DitLinear& l, const Tensor& x, Tensor& y, Epilogue ep = Epilogue::None, const char* label = "") {
    Scope s(m_.profiler_, DitOpKind::Linear, label);
    if (l.quant())
      ops::linear_w8a8(x, l.w_int8, l.w_scale, &l.b, y, ep);
    else
      ops::linear(x, l.w, &l.b, y, ep);
  }

  // W8A8 block linears on an already quantized activation, and with the (gated) residual fused in.
  void linear_q(const DitLinear& l, const ops::Int8Act& a, Tensor& y, Epilogue ep, const char* label) {
    Scope s(m_.profiler_, DitOpKind::Linear, label);
    ops::linear_w8a8(a, l.w_int8, l.w_scale, &l.b, y, ep);
  }
  void linear_residual(const DitLinear& l, const Tensor& in, const Tensor* gate, Tensor& x, const char* label) {
    Scope s(m_.profiler_, DitOpKind::Linear, label);
    ops::linear_w8a8_residual(in, l.w_int8, l.w_scale, &l.b, gate, x);
  }

  // q/k: RMSNorm over the whole dim, then 3-D RoPE. On CUDA with head_dim 128 one fused pass (ops/w8a8.h);
  // elsewhere the two reference ops.
  void norm_rope(Tensor& x, const Tensor& w, int F, int Hp, int Wp) {
    Scope s(m_.profiler_, DitOpKind::Other, "q/k rmsnorm+rope");
    const int64_t L = x.size(0), H = c_.num_heads, Dh = c_.head_dim();
    if (dev_ == Device::CUDA && Dh == 128) {
      ops::rmsnorm_rope3d(x, w, c_.eps, int(H), F, Hp, Wp, 10000.f);
      return;
    }
    ops::rmsnorm(x, w, c_.eps);
    Tensor x3 = x.view({L, H, Dh});
    ops::rope3d(x3, F, Hp, Wp, 10000.f);
  }

  // Self-attention of ws_.q/k/v into ws_.o with the run's mode (proj_l feeds the SLA linear branch when present).
  // The run's attention mode with block b's proj_l (the SLA linear branch) when it has one.
  AttentionOptions self_attention_options(const DitBlockWeights& b) const {
    AttentionOptions ao = m_.opts_.attention;
    ao.proj_l_weight = b.proj_l_w.defined() ? &b.proj_l_w : nullptr;
    ao.proj_l_bias = b.proj_l_b.defined() ? &b.proj_l_b : nullptr;
    return ao;
  }
  void self_attention(const DitBlockWeights& b, int64_t L) {
    Scope s(m_.profiler_, DitOpKind::Attention, "self-attention");
    const int64_t H = c_.num_heads, Dh = c_.head_dim();
    Tensor o3 = ws_.o.view({L, H, Dh});
    ops::attention(ws_.q.view({L, H, Dh}), ws_.k.view({L, H, Dh}), ws_.v.view({L, H, Dh}), o3,
                   self_attention_options(b));
  }
  // The same into ws_.a as the o-projection's int8 activation, where the attention kernel can quantize its own
  // output (SageSLA on sm_90, head_dim 128): that spares a quantization pass over o. False: nothing was run.
  bool self_attention_int8(const DitBlockWeights& b, int64_t L) {
    const int64_t H = c_.num_heads, Dh = c_.head_dim();
    const AttentionOptions ao = self_attention_options(b);
    const Tensor q3 = ws_.q.view({L, H, Dh});
    if (dev_ != Device::CUDA || !ops::attention_int8_supported(q3, ao)) return false;
    Scope s(m_.profiler_, DitOpKind::Attention, "self-attention");
    ops::attention_int8(q3, ws_.k.view({L, H, Dh}), ws_.v.view({L, H, Dh}), ws_.a, ao);
    return true;
  }
  // Cross-attention into ws_.a as the cross o-projection's int8 activation (CUDA, head_dim 128). False: not run.
  bool cross_attention_int8(int64_t L) {
    const int64_t H = c_.num_heads, Dh = c_.head_dim(), Lc = c_.text_len;
    const Tensor q3 = ws_.q.view({L, H, Dh});
    if (dev_ != Device::CUDA || !ops::attention_int8_supported(q3, AttentionOptions{})) return false;
    Scope s(m_.profiler_, DitOpKind::Attention, "cross-attention");
    ops::attention_int8(q3, ws_.ck.view({Lc, H, Dh}), ws_.cv.view({Lc, H, Dh}), ws_.a, AttentionOptions{});
    return true;
  }
  // Points ws_.ck / ws_.cv at block i's context k/v and says whether they must be computed (false: reused).
  bool context_kv(int i) {
    if (ws_.cache_ctx) {
      ws_.ck = ws_.ck_all.select(0, i);
      ws_.cv = ws_.cv_all.select(0, i);
    }
    return !ws_.reuse_ctx;
  }
  // Cross-attention of ws_.q over the text_len context keys ws_.ck/cv into ws_.o: dense, no mask.
  void cross_attention(int64_t L) {
    Scope s(m_.profiler_, DitOpKind::Attention, "cross-attention");
    const int64_t H = c_.num_heads, Dh = c_.head_dim(), Lc = c_.text_len;
    Tensor o3 = ws_.o.view({L, H, Dh});
    ops::attention(ws_.q.view({L, H, Dh}), ws_.ck.view({Lc, H, Dh}), ws_.cv.view({Lc, H, Dh}), o3,
                   AttentionOptions{});
  }

  void ensure_workspace(int64_t L);
  void block_w8a8(int i, const DitBlockWeights& b, int64_t L, int F, int Hp, int Wp);
  void time_embedding(float t);
  void stage_context(const Tensor& context);
  void text_embedding();
  void block(int i, const DitBlockWeights& b, int64_t L, int F, int Hp, int Wp);
  // Everything from the staged patches/context/modulation to ws_.head_out; device work only (graph-capturable).
  void body(int64_t L, int F, int Hp, int Wp);

  WanDiT& m_;
  const DitConfig& c_;
  DitWeights& w_;
  DitWorkspace& ws_;
  Device dev_;
};

void DitRunner::ensure_workspace(int64_t L) {
  if (ws_.L == L) return;
  const int64_t D = c_.dim;
  ws_.graph.reset();     // its kernels point into the buffers about to go
  ws_ = DitWorkspace();  // drop the old buffers first (frees device memory before the new ones are taken)
  ws_.L = L;
  ws_.patches = alloc({L, c_.in_dim * 4}, act());
  ws_.x = alloc({L, D}, DType::F32);
  ws_.h = alloc({L, D}, act());
  // Lifetimes let buffers share memory (the saving matters at 14B/720p: ~2.9 GB): the linear outputs that feed a
  // residual (y) are produced after h's last reader and consumed before h is written again, and the FFN hidden
  // state f is live only while q/k/v/o are dead. So y aliases h, and q/k/v/o and f share one arena.
  ws_.y = ws_.h;
  const int64_t LD = L * D, LF = L * c_.ffn_dim;
  // W8A8 blocks keep the FFN hidden state as int8 (ffn.0's epilogue quantizes it), half the bytes of f.
  const int64_t esz = int64_t(dtype_size(act()));
  const int64_t f_elems = w_.quantized ? (LF + esz - 1) / esz : LF;
  Tensor arena = alloc({std::max(4 * LD, f_elems)}, act());
  ws_.q = arena.slice(0, 0, LD).view({L, D});
  ws_.k = arena.slice(0, LD, 2 * LD).view({L, D});
  ws_.v = arena.slice(0, 2 * LD, 3 * LD).view({L, D});
  ws_.o = arena.slice(0, 3 * LD, 4 * LD).view({L, D});
  if (w_.quantized) {
    ws_.af.q = Tensor::borrow(arena.data(), {L, c_.ffn_dim}, DType::I8, dev_, std::make_shared<Tensor>(arena));
    ws_.af.scale = alloc({L, c_.ffn_dim / 128}, DType::F32);
  } else {
    ws_.f = arena.slice(0, 0, LF).view({L, c_.ffn_dim});
  }
  ws_.head_out = alloc({L, c_.out_dim * 4}, DType::F32);
  ws_.ctx_in = alloc({c_.text_len, c_.text_dim}, act());
  ws_.ctx_mid = alloc({c_.text_len, D}, act());
  ws_.ctx = alloc({c_.text_len, D}, act());
  ws_.ck = alloc({c_.text_len, D}, act());
  ws_.cv = alloc({c_.text_len, D}, act());
  ws_.mod = alloc({c_.num_layers, 6, D}, DType::F32);
  ws_.head_mod = alloc({2, D}, DType::F32);
}

// e = time_embedding(sinusoid(t)) and e0 = time_projection(e), in f32 on the host (official: fp32 autocast), then
// the per-block modulation vectors (modulation + e0) and the head's (head.modulation + e). Reads only weights.
WanDiT::TimeModulation WanDiT::time_modulation(float t) const {
  const DitConfig& c = config_;
  const DitWeights& w = *w_;
  const int64_t D = c.dim, half = c.freq_dim / 2;
  Tensor sin_emb = Tensor::empty({1, c.freq_dim}, DType::F32);
  for (int64_t j = 0; j < half; j++) {
    const double a = double(t) * std::pow(10000.0, -double(j) / double(half));  // position in float64
    sin_emb.ptr<float>()[j] = float(std::cos(a));
    sin_emb.ptr<float>()[half + j] = float(std::sin(a));
  }
  Tensor e1 = Tensor::empty({1, D}, DType::F32), e = Tensor::empty({1, D}, DType::F32);
  ops::linear(sin_emb, w.time0_w, &w.time0_b, e1);
  ops::silu(e1);
  ops::linear(e1, w.time2_w, &w.time2_b, e);
  Tensor se = e.clone();
  ops::silu(se);
  Tensor e0 = Tensor::empty({1, 6 * D}, DType::F32);
  ops::linear(se, w.tproj_w, &w.tproj_b, e0);
  TimeModulation m;
  m.t = t;
  m.mod = Tensor::empty({c.num_layers, 6, D}, DType::F32);
  for (int64_t i = 0; i < c.num_layers; i++) {
    const float* mp = w.blocks[size_t(i)].modulation.ptr<float>();
    float* dst = m.mod.ptr<float>() + i * 6 * D;
    for (int64_t j = 0; j < 6 * D; j++) dst[j] = mp[j] + e0.ptr<float>()[j];
  }
  m.head_mod = Tensor::empty({2, D}, DType::F32);
  for (int64_t r = 0; r < 2; r++)
    for (int64_t j = 0; j < D; j++)
      m.head_mod.ptr<float>()[r * D + j] = w.head_modulation.ptr<float>()[r * D + j] + e.ptr<float>()[j];
  return m;
}

namespace {
constexpr size_t kTimeCache = 4;
}

WanDiT::TimeModulation WanDiT::cached_time_modulation(float t) {
  std::lock_guard<std::mutex> lk(time_mu_);
  for (const TimeModulation& m : time_cache_)
    if (m.t == t) return m;
  return {};
}

void WanDiT::precompute_timestep(float t) {
  if (cached_time_modulation(t).mod.defined()) return;
  TimeModulation m = time_modulation(t);
  std::lock_guard<std::mutex> lk(time_mu_);
  time_cache_.push_back(std::move(m));
  if (time_cache_.size() > kTimeCache) time_cache_.erase(time_cache_.begin());
}

// The modulation for t into the workspace: from the precomputed cache when a sampler asked for it ahead, else now.
void DitRunner::time_embedding(float t) {
  if (ws_.have_t && ws_.t == t) return;
  Scope s(m_.profiler_, DitOpKind::Other);
  WanDiT::TimeModulation m = m_.cached_time_modulation(t);
  if (!m.mod.defined()) m = m_.time_modulation(t);
  ws_.mod.copy_from(m.mod);
  ws_.head_mod.copy_from(m.head_mod);
  ws_.have_t = true;
  ws_.t = t;
}

// Zero-pads the context to text_len rows (no mask afterwards, as the official code) into ws_.ctx_in.
void DitRunner::stage_context(const Tensor& context) {
  const int64_t n = context.size(0);
  if (context.is_cuda() && dev_ == Device::CUDA) {
    // On the device: convert the rows in place; the zero tail is written only when the row count changes.
    if (n > 0) {
      Tensor rows = ws_.ctx_in.slice(0, 0, n);
      Tensor src = context.contiguous();
      if (src.dtype() == rows.dtype())
        rows.copy_from(src);
      else
        ops::cast(src, rows);
    }
    if (ws_.ctx_zero_from != n && n < c_.text_len) {
      Tensor tail = ws_.ctx_in.slice(0, n, c_.text_len);
      tail.copy_from(Tensor::zeros(tail.shape(), tail.dtype()));
    }
    ws_.ctx_zero_from = n;
    return;
  }
  Tensor padded = Tensor::zeros({c_.text_len, c_.text_dim}, DType::F32);
  if (n > 0) padded.slice(0, 0, n).copy_from(context.to_f32_host().contiguous());
  upload(padded, ws_.ctx_in);
  ws_.ctx_zero_from = n;
}

// The text MLP on the staged context (and its shared W8A8 quantization).
void DitRunner::text_embedding() {
  linear(w_.text0, ws_.ctx_in, ws_.ctx_mid, Epilogue::GeluTanh);
  linear(w_.text2, ws_.ctx_mid, ws_.ctx);
  if (w_.quantized) {  // the context's k/v projections of every block share one quantization
    Scope s(m_.profiler_, DitOpKind::Other);
    ops::quantize_act_int8(ws_.ctx, ws_.a_ctx);
  }
}

void DitRunner::block(int i, const DitBlockWeights& b, int64_t L, int F, int Hp, int Wp) {
  const float eps = c_.eps;
  Tensor mod = ws_.mod.select(0, i);  // [6, D]: shift, scale, gate (self-attn); shift, scale, gate (ffn)
  Tensor m0 = mod.select(0, 0), m1 = mod.select(0, 1), m2 = mod.select(0, 2);
  Tensor m3 = mod.select(0, 3), m4 = mod.select(0, 4), m5 = mod.select(0, 5);
  Tensor& x = ws_.x;

  // Self-attention.
  {
    Scope s(m_.profiler_, DitOpKind::Other, "norm1+modulate");
    ops::layernorm_modulate(x, m0, m1, eps, ws_.h);
  }
  linear(b.sq, ws_.h, ws_.q, Epilogue::None, "self q/k/v GEMMs");
  linear(b.sk, ws_.h, ws_.k, Epilogue::None, "self q/k/v GEMMs");
  linear(b.sv, ws_.h, ws_.v, Epilogue::None, "self q/k/v GEMMs");
  norm_rope(ws_.q, b.s_norm_q, F, Hp, Wp);
  norm_rope(ws_.k, b.s_norm_k, F, Hp, Wp);
  self_attention(b, L);
  linear(b.so, ws_.o, ws_.y, Epilogue::None, "self o GEMM");
  {
    Scope s(m_.profiler_, DitOpKind::Other, "gated residual + norm3");
    ops::residual_layernorm(x, ws_.y, &m2, &b.norm3_w, &b.norm3_b, false, eps, ws_.h);
  }

  // Cross-attention over the text_len context rows: no RoPE, no mask, no gate.
  linear(b.cq, ws_.h, ws_.q, Epilogue::None, "cross q GEMM");
  const bool ctx_kv = context_kv(i);
  if (ctx_kv) {
    linear(b.ck, ws_.ctx, ws_.ck, Epilogue::None, "cross k/v GEMMs (context)");
    linear(b.cv, ws_.ctx, ws_.cv, Epilogue::None, "cross k/v GEMMs (context)");
  }
  {
    Scope s(m_.profiler_, DitOpKind::Other, "cross q/k rmsnorm");
    ops::rmsnorm(ws_.q, b.c_norm_q, eps);
    if (ctx_kv) ops::rmsnorm(ws_.ck, b.c_norm_k, eps);
  }
  cross_attention(L);
  linear(b.co, ws_.o, ws_.y, Epilogue::None, "cross o GEMM");
  {
    Scope s(m_.profiler_, DitOpKind::Other, "residual + norm2+modulate");
    ops::residual_layernorm(x, ws_.y, nullptr, &m4, &m3, true, eps, ws_.h);
  }

  // FFN.
  linear(b.ffn0, ws_.h, ws_.f, Epilogue::GeluTanh, "ffn.0 GEMM+GELU");
  linear(b.ffn2, ws_.f, ws_.y, Epilogue::None, "ffn.2 GEMM");
  {
    Scope s(m_.profiler_, DitOpKind::Other, "gated residual");
    ops::gated_residual(x, ws_.y, m5);
  }
}

// The same block with W8A8 linears, using the fused entry points of ops/w8a8.h: norm -> int8 in one pass, one
// quantization shared by q/k/v (and by the context's k/v), and the o-proj / ffn.2 GEMMs adding straight into the
// residual stream with their gate; ffn.0 quantizes its GELU output for ffn.2 in its epilogue. Same math as block()
// up to the activation quantization.
void DitRunner::block_w8a8(int i, const DitBlockWeights& b, int64_t L, int F, int Hp, int Wp) {
  const float eps = c_.eps;
  Tensor mod = ws_.mod.select(0, i);
  Tensor m0 = mod.select(0, 0), m1 = mod.select(0, 1), m2 = mod.select(0, 2);
  Tensor m3 = mod.select(0, 3), m4 = mod.select(0, 4), m5 = mod.select(0, 5);
  Tensor& x = ws_.x;

  {
    Scope s(m_.profiler_, DitOpKind::Other, "norm1+modulate -> int8");
    ops::layernorm_modulate_quant(x, m0, m1, eps, ws_.a);
  }
  linear_q(b.sq, ws_.a, ws_.q, Epilogue::None, "self q/k/v GEMMs");
  linear_q(b.sk, ws_.a, ws_.k, Epilogue::None, "self q/k/v GEMMs");
  linear_q(b.sv, ws_.a, ws_.v, Epilogue::None, "self q/k/v GEMMs");
  norm_rope(ws_.q, b.s_norm_q, F, Hp, Wp);
  norm_rope(ws_.k, b.s_norm_k, F, Hp, Wp);
  if (self_attention_int8(b, L)) {
    Scope s(m_.profiler_, DitOpKind::Linear, "self o: GEMM+gated residual (int8 from attention)");
    ops::linear_w8a8_residual(ws_.a, b.so.w_int8, b.so.w_scale, &b.so.b, &m2, x);
  } else {
    self_attention(b, L);
    linear_residual(b.so, ws_.o, &m2, x, "self o: quant+GEMM+gated residual");
  }

  {
    Scope s(m_.profiler_, DitOpKind::Other, "norm3 -> int8");
    ops::layernorm_quant(x, &b.norm3_w, &b.norm3_b, eps, ws_.a);
  }
  linear_q(b.cq, ws_.a, ws_.q, Epilogue::None, "cross q GEMM");
  const bool ctx_kv = context_kv(i);
  if (ctx_kv) {
    linear_q(b.ck, ws_.a_ctx, ws_.ck, Epilogue::None, "cross k/v GEMMs (context)");
    linear_q(b.cv, ws_.a_ctx, ws_.cv, Epilogue::None, "cross k/v GEMMs (context)");
  }
  {
    Scope s(m_.profiler_, DitOpKind::Other, "cross q/k rmsnorm");
    ops::rmsnorm(ws_.q, b.c_norm_q, eps);
    if (ctx_kv) ops::rmsnorm(ws_.ck, b.c_norm_k, eps);
  }
  if (cross_attention_int8(L)) {
    Scope s(m_.profiler_, DitOpKind::Linear, "cross o: GEMM+residual (int8 from attention)");
    ops::linear_w8a8_residual(ws_.a, b.co.w_int8, b.co.w_scale, &b.co.b, nullptr, x);
  } else {
    cross_attention(L);
    linear_residual(b.co, ws_.o, nullptr, x, "cross o: quant+GEMM+residual");
  }

  {
    Scope s(m_.profiler_, DitOpKind::Other, "norm2+modulate -> int8");
    ops::layernorm_modulate_quant(x, m3, m4, eps, ws_.a);
  }
  {
    // GELU and the 1x128 quantization in ffn.0's epilogue: ffn.2 reads int8 directly (no bf16 round trip).
    Scope s(m_.profiler_, DitOpKind::Linear, "ffn.0 GEMM+GELU -> int8");
    ops::linear_w8a8_quant(ws_.a, b.ffn0.w_int8, b.ffn0.w_scale, &b.ffn0.b, ws_.af, Epilogue::GeluTanh);
  }
  {
    Scope s(m_.profiler_, DitOpKind::Linear, "ffn.2 GEMM+gated residual");
    ops::linear_w8a8_residual(ws_.af, b.ffn2.w_int8, b.ffn2.w_scale, &b.ffn2.b, &m5, x);
  }
}

void DitRunner::body(int64_t L, int F, int Hp, int Wp) {
  linear(w_.patch, ws_.patches, ws_.x);
  if (!ws_.reuse_ctx) text_embedding();
#if TD_WITH_CUDA
  cuda::DitOffloader* off = w_.offload.get();
  if (off) off->begin();
#endif
  for (int i = 0; i < c_.num_layers; i++) {
    const DitBlockWeights* b = &w_.blocks[size_t(i)];
#if TD_WITH_CUDA
    if (off) b = &w_.slot_blocks[off->acquire(i)];
#endif
    if (w_.quantized)
      block_w8a8(i, *b, L, F, Hp, Wp);
    else
      block(i, *b, L, F, Hp, Wp);
#if TD_WITH_CUDA
    if (off) off->release(i);
#endif
  }
  // Head: LN (no affine) * (1 + scale) + shift, in fp32, then the Linear.
  {
    Scope s(m_.profiler_, DitOpKind::Other);
    ops::layernorm_modulate(ws_.x, ws_.head_mod.select(0, 0), ws_.head_mod.select(0, 1), c_.eps, ws_.h);
  }
  linear(w_.head, ws_.h, ws_.head_out);
}

Tensor DitRunner::run(const Tensor& x_in, float t, const Tensor& context_in, const Tensor* y_in, bool on_device) {
  // ---- validate ----
  TD_CHECK(x_in.defined() && x_in.dim() == 4, "x", "expected [", c_.noise_dim(), ", F, H, W], got ",
           x_in.defined() ? shape_str(x_in.shape()) : std::string("nothing"));
  TD_CHECK(x_in.size(0) == c_.noise_dim(), "x", "has ", x_in.size(0), " channels; the model (", c_.name,
           ") expects ", c_.noise_dim());
  const int64_t F = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  TD_CHECK(F > 0 && H > 0 && W > 0, "x", "empty grid ", shape_str(x_in.shape()));
  TD_CHECK(H % 2 == 0 && W % 2 == 0, "x", "height and width must be even (2x2 patches), got ", shape_str(x_in.shape()));
  TD_CHECK(F <= 1024 && H / 2 <= 1024 && W / 2 <= 1024, "x", "grid ", shape_str(x_in.shape()),
           " exceeds RoPE's 1024 positions per axis");
  TD_CHECK(std::isfinite(t), "t", "timestep must be finite");
  TD_CHECK(context_in.defined() && context_in.dim() == 2 && context_in.size(1) == c_.text_dim, "context",
           "expected [L, ", c_.text_dim, "], got ", context_in.defined() ? shape_str(context_in.shape()) : "nothing");
  TD_CHECK(context_in.size(0) <= c_.text_len, "context", "has ", context_in.size(0), " rows; at most ", c_.text_len);
  if (c_.y_dim() > 0) {
    TD_CHECK(y_in && y_in->defined(), "y", "the ", c_.model_type, " model needs y [", c_.y_dim(), ", F, H, W]");
    TD_CHECK(y_in->shape() == Shape({c_.y_dim(), F, H, W}), "y", "expected ", shape_str({c_.y_dim(), F, H, W}),
             ", got ", shape_str(y_in->shape()));
  } else {
    TD_CHECK(!y_in || !y_in->defined(), "y", "given, but the ", c_.model_type, " model takes no y");
  }
  const int Fi = int(F), Hp = int(H / 2), Wp = int(W / 2);
  const int64_t L = F * Hp * Wp, Cin = c_.in_dim;
  ensure_workspace(L);
  const bool cuda = dev_ == Device::CUDA;
  // TD_LOG_LEVEL=debug: where a call's wall time goes (synchronises between the phases, so only for diagnosis).
  const bool timed = log_level() <= LogLevel::Debug;
  auto mark = [&] {
    if (timed && cuda) device_synchronize();
    return timed ? monotonic_seconds() : 0.0;
  };
  const double t_start = mark();

  // ---- stage the per-call inputs into the workspace (outside any graph) ----
  // Patchify: token n = (f, h, w) row-major, vector (c, kh, kw) as the Conv3d weight. On the device when x (and y)
  // already are f32 CUDA tensors, else on the host and uploaded.
  const bool dev_inputs = cuda && x_in.is_cuda() && x_in.dtype() == DType::F32 &&
                          (!y_in || !y_in->defined() || (y_in->is_cuda() && y_in->dtype() == DType::F32));
  if (dev_inputs) {
#if TD_WITH_CUDA
    Scope s(m_.profiler_, DitOpKind::Other);
    Tensor yc = y_in && y_in->defined() ? y_in->contiguous() : Tensor();
    cuda::dit_patchify(x_in.contiguous(), yc.defined() ? &yc : nullptr, ws_.patches);
#endif
  } else {
    Scope s(m_.profiler_, DitOpKind::Other);
    Tensor x = x_in.to_f32_host().contiguous();
    Tensor y = y_in && y_in->defined() ? y_in->to_f32_host().contiguous() : Tensor();
    const int64_t Cx = x.size(0);
    Tensor p = Tensor::empty({L, Cin * 4}, DType::F32);
    const float* xp = x.ptr<float>();
    const float* yp = y.defined() ? y.ptr<float>() : nullptr;
    float* pp = p.ptr<float>();
    parallel_for(L, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++) {
        const int64_t f = n / (int64_t(Hp) * Wp), hh = (n / Wp) % Hp, ww = n % Wp;
        float* dst = pp + n * Cin * 4;
        for (int64_t c = 0; c < Cin; c++) {
          const float* plane = c < Cx ? xp + (c * F + f) * H * W : yp + ((c - Cx) * F + f) * H * W;
          for (int kh = 0; kh < 2; kh++)
            for (int kw = 0; kw < 2; kw++) dst[c * 4 + kh * 2 + kw] = plane[(2 * hh + kh) * W + 2 * ww + kw];
        }
      }
    });
    upload(p, ws_.patches);
  }
  time_embedding(t);
  ws_.cache_ctx = m_.context_reuse_ && cuda && context_in.is_cuda() && !w_.offload && !m_.opts_.cuda_graph;
  ws_.reuse_ctx = ws_.cache_ctx && ws_.ctx_valid && ws_.ctx_key == context_in.data() &&
                  ws_.ctx_key_shape == context_in.shape() && ws_.ctx_key_dtype == context_in.dtype();
  if (ws_.cache_ctx && !ws_.ck_all.defined()) {
    ws_.ck_all = alloc({c_.num_layers, c_.text_len, c_.dim}, act());
    ws_.cv_all = alloc({c_.num_layers, c_.text_len, c_.dim}, act());
  }
  if (!ws_.reuse_ctx) stage_context(context_in);
  ws_.ctx_valid = false;  // until the body below has filled ck_all / cv_all for this context
  const double t_staged = mark();

  // ---- the device work: eager, or through a CUDA graph ----
  bool ran = false;
#if TD_WITH_CUDA
  if (cuda && m_.opts_.cuda_graph && !m_.profiler_ && !w_.offload) {
    const int64_t grid[3] = {F, Hp, Wp};
    auto same = [&](const int64_t* g) { return g[0] == grid[0] && g[1] == grid[1] && g[2] == grid[2]; };
    if (!(ws_.graph && same(ws_.graph_grid))) {
      ws_.graph.reset();
      if (same(ws_.warm_grid)) {  // warmed up at this grid: capture now
        auto g = std::make_shared<cuda::DitGraph>();
        g->capture([&] { body(L, Fi, Hp, Wp); });
        ws_.graph = g;
        std::copy(grid, grid + 3, ws_.graph_grid);
      }
    }
    if (ws_.graph) {
      static_cast<cuda::DitGraph*>(ws_.graph.get())->replay();
      ran = true;
    } else {
      std::copy(grid, grid + 3, ws_.warm_grid);
    }
  }
#endif
  if (!ran) body(L, Fi, Hp, Wp);
  if (ws_.cache_ctx) {
    ws_.ctx_valid = true;
    ws_.ctx_key = context_in.data();
    ws_.ctx_key_shape = context_in.shape();
    ws_.ctx_key_dtype = context_in.dtype();
  }
  const double t_body = mark();
  // Prints the phases once the output exists (CUDA and CPU paths alike).
  auto log_phases = [&] {
    if (timed)
      log_debug("dit forward: inputs ", 1e3 * (t_staged - t_start), " ms (", dev_inputs ? "device" : "host",
                " patchify, ", context_in.is_cuda() ? "device" : "host", " context), network ",
                1e3 * (t_body - t_staged), " ms, output ", 1e3 * (mark() - t_body), " ms");
  };

  // ---- unpatchify ----
  Scope s(m_.profiler_, DitOpKind::Other);
  const int64_t Co = c_.out_dim;
#if TD_WITH_CUDA
  if (cuda) {
    Tensor out = Tensor::empty({Co, F, H, W}, DType::F32, Device::CUDA);
    cuda::dit_unpatchify(ws_.head_out, out);
    Tensor r = on_device ? out : out.to(Device::CPU);
    log_phases();
    return r;
  }
#endif
  Tensor ho = ws_.head_out.to(Device::CPU);
  Tensor out = Tensor::empty({Co, F, H, W}, DType::F32);
  const float* hp = ho.ptr<float>();
  float* op = out.ptr<float>();
  parallel_for(L, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const int64_t f = n / (int64_t(Hp) * Wp), hh = (n / Wp) % Hp, ww = n % Wp;
      const float* src = hp + n * Co * 4;
      for (int kh = 0; kh < 2; kh++)
        for (int kw = 0; kw < 2; kw++)
          for (int64_t c = 0; c < Co; c++)
            op[((c * F + f) * H + 2 * hh + kh) * W + 2 * ww + kw] = src[(kh * 2 + kw) * Co + c];
    }
  });
  log_phases();
  return out;
}

Tensor WanDiT::forward(const Tensor& x, float t, const Tensor& context, const Tensor* y) {
  DitRunner r(*this);
  return r.run(x, t, context, y, false);
}

Tensor WanDiT::forward_device(const Tensor& x, float t, const Tensor& context, const Tensor* y) {
  DitRunner r(*this);
  return r.run(x, t, context, y, true);
}

}  // namespace td
