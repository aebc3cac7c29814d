// `turbodiff quantize` / `turbodiff merge` on tiny checkpoints: layout and dtypes of the -quant output, round trip
// through safetensors, exact merge arithmetic, and the bad inputs (already quantized, missing keys, shapes).
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/merge.h"
#include "model/quantize.h"
#include "ops/w8a8.h"
#include "test_util.h"

namespace td {
namespace {

using test::randn;

const char* kLinears[] = {"self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q",
                          "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"};

// A one-block Wan-like DiT (dim 128, ffn 256) as an rCM/TurboDiffusion training checkpoint would name it ("net.").
TensorMap tiny_dit(DType dt, uint64_t seed) {
  TensorMap m;
  m.source = "tiny.safetensors";
  auto put = [&](const std::string& k, const Shape& s, float sd = 0.05f) {
    m.put("net." + k, randn(s, seed++, sd).to(dt));
  };
  const int64_t D = 128, F = 256;
  for (const char* l : kLinears) {
    const std::string n = l;
    const int64_t out = n == "ffn.0" ? F : D, in = n == "ffn.2" ? F : D;
    put("blocks.0." + n + ".weight", {out, in});
    put("blocks.0." + n + ".bias", {out});
  }
  put("blocks.0.self_attn.norm_q.weight", {D});
  put("blocks.0.self_attn.norm_k.weight", {D});
  put("blocks.0.cross_attn.norm_q.weight", {D});
  put("blocks.0.cross_attn.norm_k.weight", {D});
  put("blocks.0.norm3.weight", {D});
  put("blocks.0.norm3.bias", {D});
  put("blocks.0.modulation", {1, 6, D});
  put("blocks.0.self_attn.attn_op.local_attn.proj_l.weight", {128, 128});
  put("blocks.0.self_attn.attn_op.local_attn.proj_l.bias", {128});
  put("patch_embedding.weight", {D, 16, 1, 2, 2});
  put("patch_embedding.bias", {D});
  put("head.head.weight", {64, D});
  put("head.head.bias", {64});
  return m;
}

TensorMap to_map(const std::vector<std::pair<std::string, Tensor>>& v, const std::string& src) {
  TensorMap m;
  m.source = src;
  for (const auto& p : v) m.put(p.first, p.second);
  return m;
}

std::string tmp_path(const std::string& name) {
  return std::string(TD_BINARY_DIR) + "/w8a8_test_" + name;
}

TEST(Quantize, TinyCheckpointLayoutAndRoundTrip) {
  for (DType dt : {DType::BF16, DType::F32}) {
    const TensorMap in = tiny_dit(dt, 1);
    QuantizeStats st;
    const auto out = quantize_dit_checkpoint(in, &st);
    EXPECT_EQ(st.linears, 10);
    const std::string path = tmp_path("quant.safetensors");
    save_safetensors(path, out);
    const TensorMap q = load_checkpoint(path);
    for (const char* l : kLinears) {
      const std::string b = std::string("blocks.0.") + l;
      ASSERT_TRUE(q.has(b + ".int8_weight")) << b;
      EXPECT_FALSE(q.has(b + ".weight")) << b;
      const Tensor &wq = q.get(b + ".int8_weight"), &ws = q.get(b + ".scale"), &bias = q.get(b + ".bias");
      const Tensor& w = in.get("net." + b + ".weight");
      EXPECT_EQ(wq.dtype(), DType::I8);
      EXPECT_EQ(wq.shape(), w.shape());
      EXPECT_EQ(ws.dtype(), DType::F32);
      EXPECT_EQ(ws.shape(), (Shape{w.size(0) / 128, w.size(1) / 128}));
      EXPECT_EQ(bias.dtype(), DType::BF16);
      EXPECT_EQ(bias.shape(), (Shape{w.size(0)}));
      // The stored bytes are exactly what quantize_weight_int8 gives.
      Tensor eq, es;
      ops::quantize_weight_int8(w, eq, es);
      EXPECT_EQ(std::memcmp(eq.data(), wq.data(), eq.nbytes()), 0) << b;
      EXPECT_EQ(std::memcmp(es.data(), ws.data(), es.nbytes()), 0) << b;
      // Dequantized weight close to the original.
      Tensor deq = Tensor::empty(w.shape(), DType::F32);
      const int64_t K = w.size(1), kb = ws.size(1);
      for (int64_t i = 0; i < wq.numel(); i++)
        deq.ptr<float>()[i] = float(wq.ptr<int8_t>()[i]) * ws.ptr<float>()[(i / K / 128) * kb + (i % K) / 128];
      EXPECT_LT(test::nmse(deq, w), 3e-4) << b;
    }
    // Everything else bf16, names normalised (no "net."), proj_l kept as a plain Linear, patch embedding as Linear.
    for (const auto& kv : q.all()) {
      EXPECT_EQ(kv.first.find("net."), std::string::npos) << kv.first;
      if (kv.second.dtype() == DType::I8 || kv.first.find(".scale") != std::string::npos) continue;
      EXPECT_EQ(kv.second.dtype(), DType::BF16) << kv.first;
    }
    EXPECT_EQ(q.get("blocks.0.self_attn.attn_op.local_attn.proj_l.weight").shape(), (Shape{128, 128}));
    EXPECT_EQ(q.get("patch_embedding.weight").shape(), (Shape{128, 64}));
    EXPECT_EQ(q.get("blocks.0.modulation").shape(), (Shape{1, 6, 128}));
    EXPECT_EQ(test::max_abs_diff(q.get("head.head.weight"), in.get("net.head.head.weight").to(DType::BF16)), 0.0);

    // A quantized checkpoint is refused.
    EXPECT_THROW(quantize_dit_checkpoint(q), Error);
    std::remove(path.c_str());
  }
  TensorMap empty;
  empty.source = "none.safetensors";
  empty.put("text_embedding.0.weight", randn({128, 64}, 1));
  EXPECT_THROW(quantize_dit_checkpoint(empty), Error);
}

TEST(Merge, ArithmeticExactAndTargetOnlyKeysCopied) {
  const TensorMap B = tiny_dit(DType::BF16, 10), D0 = tiny_dit(DType::BF16, 20);
  TensorMap D1 = tiny_dit(DType::F32, 30);
  D1.put("net.blocks.0.self_attn.attn_op.local_attn.proj_l.extra", randn({4}, 5));
  TensorMap B2 = B;  // B without proj_l, as the rCM model has none
  B2.erase("net.blocks.0.self_attn.attn_op.local_attn.proj_l.weight");
  B2.erase("net.blocks.0.self_attn.attn_op.local_attn.proj_l.bias");
  for (float w : {1.0f, 0.37f}) {
    MergeStats st;
    const TensorMap out = to_map(merge_checkpoints(B2, D0, D1, w, &st), "merged");
    EXPECT_EQ(st.merged, int(B2.size()));
    EXPECT_EQ(st.copied, 3);  // proj_l weight, bias, extra
    for (const auto& kv : B2.all()) {
      const std::string k = kv.first.substr(4);  // names come out normalised
      const Tensor& r = out.get(k);
      ASSERT_EQ(r.dtype(), DType::BF16) << k;  // B's dtype
      const Tensor b = kv.second.to_f32_host(), d0 = D0.get(kv.first).to_f32_host(), d1 = D1.get(kv.first).to_f32_host();
      const Tensor rf = r.to_f32_host();
      for (int64_t i = 0; i < b.numel(); i++) {
        volatile float delta = d1.ptr<float>()[i] - d0.ptr<float>()[i];
        volatile float scaled = w * delta;
        volatile float sum = b.ptr<float>()[i] + scaled;
        ASSERT_EQ(rf.ptr<float>()[i], bf16_to_f32(f32_to_bf16(sum))) << k << "[" << i << "]";
      }
    }
    const Tensor& pl = out.get("blocks.0.self_attn.attn_op.local_attn.proj_l.weight");
    EXPECT_EQ(pl.dtype(), DType::F32);  // copied as it is
    EXPECT_EQ(test::max_abs_diff(pl, D1.get("net.blocks.0.self_attn.attn_op.local_attn.proj_l.weight")), 0.0);
  }
  // Exact values: 1.5 + 1.0 * (2.0 - 0.25) = 3.25 in bf16.
  TensorMap b1, z0, z1;
  b1.put("blocks.0.ffn.0.bias", Tensor::from_f32({1}, {1.5f}).to(DType::BF16));
  z0.put("blocks.0.ffn.0.bias", Tensor::from_f32({1}, {0.25f}));
  z1.put("blocks.0.ffn.0.bias", Tensor::from_f32({1}, {2.0f}));
  const TensorMap r = to_map(merge_checkpoints(b1, z0, z1, 1.f), "r");
  EXPECT_EQ(r.get("blocks.0.ffn.0.bias").to_f32_host().ptr<float>()[0], 3.25f);
}

TEST(Merge, BadInputs) {
  const TensorMap B = tiny_dit(DType::BF16, 10), D0 = tiny_dit(DType::BF16, 20), D1 = tiny_dit(DType::BF16, 30);
  TensorMap missing = D0;
  missing.erase("net.blocks.0.ffn.0.weight");
  EXPECT_THROW(merge_checkpoints(B, missing, D1, 1.f), Error);
  EXPECT_THROW(merge_checkpoints(B, D0, missing, 1.f), Error);
  TensorMap wrong = D1;
  wrong.put("net.blocks.0.ffn.0.weight", randn({128, 128}, 1));
  try {
    merge_checkpoints(B, D0, wrong, 1.f);
    FAIL() << "shape mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.0.ffn.0.weight"), std::string::npos) << e.what();
  }
  const TensorMap q = to_map(quantize_dit_checkpoint(B), "q.safetensors");
  EXPECT_THROW(merge_checkpoints(q, D0, D1, 1.f), Error);
}

}  // namespace
}  // namespace td
