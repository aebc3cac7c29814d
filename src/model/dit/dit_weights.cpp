#include "model/dit/dit_weights.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "ops/w8a8.h"
#if TD_WITH_CUDA
#include "cuda/dit_runtime.h"
#endif

namespace td {

namespace {

const char* kBlockLinears[] = {"self_attn.q",  "self_attn.k",  "self_attn.v",  "self_attn.o", "cross_attn.q",
                               "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0",       "ffn.2"};

std::string blk(int i, const std::string& rest) { return cat("blocks.", i, ".", rest); }

Tensor host_f32(const Tensor& t) { return t.to_f32_host().contiguous(); }

// The dtype float weights live in on the model's device.
DType weight_dtype(Device d) { return d == Device::CUDA ? DType::BF16 : DType::F32; }

struct Binder {
  const DitConfig& c;
  const DitOptions& o;
  LinearMode mode;
  DitWeightSource& src;
  DitWeights& w;
  bool keep_host = false;  // --offload: block tensors stay on the host until packed into pinned memory

  Tensor place(Tensor host, DType dt) {
    if (host.dtype() != dt) host = host.contiguous().to(dt);
    Tensor t = host.contiguous();
    if (keep_host) return t;  // may still borrow the mapped file: it is copied into pinned memory right after
    if (o.device == Device::CUDA) t = t.to(Device::CUDA);
    w.device_bytes += t.nbytes();
    return t;
  }
  // f32 parameter on the device (norm weights, biases).
  Tensor param(const std::string& name, const Shape& shape) {
    Tensor t = place(src.get(name, shape), DType::F32);
    t.set_name(name);
    return t;
  }
  Tensor host_param(const std::string& name, const Shape& shape) {
    Tensor raw = src.get(name, shape);
    Tensor t = host_f32(raw);
    if (t.storage() == raw.storage()) t = t.clone();  // own the memory rather than pin the mapped file
    t.set_name(name);
    return t;
  }

  void linear(DitLinear& l, const std::string& base, int64_t out, int64_t in, bool block_linear) {
    l.name = base;
    l.in = in;
    l.out = out;
    l.b = param(base + ".bias", {out});
    const bool src_quant = src.has(base + ".int8_weight");
    const bool want_quant = block_linear && mode == LinearMode::W8A8;
    const Shape sshape = {(out + 127) / 128, (in + 127) / 128};
    if (want_quant) {
      TD_CHECK(in % 128 == 0 && out % 128 == 0, "--linear w8a8",
               cat(base, " is ", out, "x", in, "; W8A8 needs both dims to be multiples of 128"));
      Tensor q, s;
      if (src_quant) {
        q = src.get(base + ".int8_weight", {out, in});
        s = src.get(base + ".scale", sshape);
        expect_dtype(q, DType::I8, base + ".int8_weight");
        s = host_f32(s);
      } else {
        ops::quantize_weight_int8(host_f32(src.get(base + ".weight", {out, in})), q, s);
      }
      l.w_int8 = place(q.contiguous(), DType::I8).set_name(base + ".int8_weight");
      l.w_scale = place(s, DType::F32).set_name(base + ".scale");
      return;
    }
    Tensor wt;
    if (src_quant) {  // dequantize: w = q * scale[tile]
      Tensor q = src.get(base + ".int8_weight", {out, in}).contiguous();
      expect_dtype(q, DType::I8, base + ".int8_weight");
      Tensor s = host_f32(src.get(base + ".scale", sshape));
      wt = Tensor::empty({out, in}, DType::F32);
      const int8_t* qp = q.ptr<int8_t>();
      const float* sp = s.ptr<float>();
      float* wp = wt.ptr<float>();
      const int64_t sk = sshape[1];
      parallel_for(out, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++)
          for (int64_t k = 0; k < in; k++) wp[r * in + k] = float(qp[r * in + k]) * sp[(r / 128) * sk + k / 128];
      });
    } else {
      wt = src.get(base + ".weight", {out, in});
    }
    l.w = place(wt, weight_dtype(o.device)).set_name(base + ".weight");
  }
};

}  // namespace

bool dit_is_block_linear(const std::string& base) { return base.rfind("blocks.", 0) == 0; }

std::vector<std::string> dit_linear_names(const DitConfig& c) {
  std::vector<std::string> v = {"patch_embedding", "text_embedding.0", "text_embedding.2", "time_embedding.0",
                                "time_embedding.2", "time_projection.1", "head.head"};
  for (int i = 0; i < c.num_layers; i++)
    for (const char* l : kBlockLinears) v.push_back(blk(i, l));
  return v;
}

void bind_dit_weights(const DitConfig& c, const DitOptions& o, LinearMode mode, DitWeightSource& src,
                      DitWeights& w) {
  TD_ASSERT(mode == LinearMode::Float || mode == LinearMode::W8A8, "unresolved linear mode");
  Binder b{c, o, mode, src, w};
  const int64_t D = c.dim, F = c.ffn_dim, Dh = c.head_dim();
  w.device_bytes = 0;
  w.quantized = mode == LinearMode::W8A8;
  b.linear(w.patch, "patch_embedding", D, c.in_dim * 4, false);
  b.linear(w.text0, "text_embedding.0", D, c.text_dim, false);
  b.linear(w.text2, "text_embedding.2", D, D, false);
  b.linear(w.head, "head.head", c.out_dim * 4, D, false);
  w.time0_w = b.host_param("time_embedding.0.weight", {D, c.freq_dim});
  w.time0_b = b.host_param("time_embedding.0.bias", {D});
  w.time2_w = b.host_param("time_embedding.2.weight", {D, D});
  w.time2_b = b.host_param("time_embedding.2.bias", {D});
  w.tproj_w = b.host_param("time_projection.1.weight", {6 * D, D});
  w.tproj_b = b.host_param("time_projection.1.bias", {6 * D});
  w.head_modulation = b.host_param("head.modulation", {1, 2, D}).view({2, D});
  w.blocks.clear();
  w.blocks.resize(size_t(c.num_layers));
  const bool offload = o.offload && o.device == Device::CUDA;
  if (o.offload && o.device != Device::CUDA) log_warn("--offload streams blocks to a CUDA device; ignored on the cpu");
  b.keep_host = offload;
  for (int i = 0; i < c.num_layers; i++) {
    DitBlockWeights& k = w.blocks[size_t(i)];
    b.linear(k.sq, blk(i, "self_attn.q"), D, D, true);
    b.linear(k.sk, blk(i, "self_attn.k"), D, D, true);
    b.linear(k.sv, blk(i, "self_attn.v"), D, D, true);
    b.linear(k.so, blk(i, "self_attn.o"), D, D, true);
    b.linear(k.cq, blk(i, "cross_attn.q"), D, D, true);
    b.linear(k.ck, blk(i, "cross_attn.k"), D, D, true);
    b.linear(k.cv, blk(i, "cross_attn.v"), D, D, true);
    b.linear(k.co, blk(i, "cross_attn.o"), D, D, true);
    b.linear(k.ffn0, blk(i, "ffn.0"), F, D, true);
    b.linear(k.ffn2, blk(i, "ffn.2"), D, F, true);
    k.s_norm_q = b.param(blk(i, "self_attn.norm_q.weight"), {D});
    k.s_norm_k = b.param(blk(i, "self_attn.norm_k.weight"), {D});
    k.c_norm_q = b.param(blk(i, "cross_attn.norm_q.weight"), {D});
    k.c_norm_k = b.param(blk(i, "cross_attn.norm_k.weight"), {D});
    k.norm3_w = b.param(blk(i, "norm3.weight"), {D});
    k.norm3_b = b.param(blk(i, "norm3.bias"), {D});
    k.modulation = b.host_param(blk(i, "modulation"), {1, 6, D}).view({6, D});
    const std::string pl = blk(i, "self_attn.attn_op.local_attn.proj_l");
    if (src.has(pl + ".weight")) {
      k.proj_l_w = b.param(pl + ".weight", {Dh, Dh});
      k.proj_l_b = b.param(pl + ".bias", {Dh});
    }
  }
  b.keep_host = false;
  if (!offload) return;
#if TD_WITH_CUDA
  auto off = std::make_shared<cuda::DitOffloader>(
      c.num_layers, [&](int i) { return dit_block_device_tensors(w.blocks[size_t(i)]); });
  for (int s = 0; s < 2; s++) {
    w.slot_blocks[s] = w.blocks[0];
    std::vector<Tensor*> dst = dit_block_device_tensors(w.slot_blocks[s]);
    const std::vector<Tensor>& views = off->slot_tensors(s);
    TD_ASSERT(dst.size() == views.size(), "offload slot layout");
    for (size_t k = 0; k < dst.size(); k++) *dst[k] = views[k];
    w.slot_blocks[s].modulation = Tensor();
  }
  for (DitBlockWeights& k : w.blocks)
    for (Tensor* t : dit_block_device_tensors(k)) *t = Tensor();  // the pinned copy is the only one now
  w.device_bytes += off->device_bytes();
  log_info("DiT offload: ", c.num_layers, " blocks of ", off->block_bytes() >> 20,
           " MiB in pinned host memory, 2 device slots");
  w.offload = off;
#else
  fail("--offload", "this turbodiff was built without CUDA");
#endif
}

std::vector<Tensor*> dit_block_device_tensors(DitBlockWeights& b) {
  std::vector<Tensor*> v;
  for (DitLinear* l : {&b.sq, &b.sk, &b.sv, &b.so, &b.cq, &b.ck, &b.cv, &b.co, &b.ffn0, &b.ffn2})
    for (Tensor* t : {&l->w, &l->w_int8, &l->w_scale, &l->b})
      if (t->defined()) v.push_back(t);
  for (Tensor* t : {&b.s_norm_q, &b.s_norm_k, &b.c_norm_q, &b.c_norm_k, &b.norm3_w, &b.norm3_b, &b.proj_l_w,
                    &b.proj_l_b})
    if (t->defined()) v.push_back(t);
  return v;
}

}  // namespace td
