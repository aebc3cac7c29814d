// umT5 encoder (CPU): relative-position buckets, a tiny random encoder against the PyTorch reference
// (scripts/ref/t5_ref.py via scripts/fixtures/make_t5_fixtures.py), loading paths, padding invariance, INT8 error.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "cpu/t5_ops.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/t5/t5_encoder.h"
#include "model/tokenizer/tokenizer.h"
#include "test_util.h"

namespace {

const std::string kFix = std::string(TD_SOURCE_DIR) + "/tests/fixtures/t5/";

std::vector<int32_t> ids_of(const td::Tensor& t) {
  return std::vector<int32_t>(t.ptr<int32_t>(), t.ptr<int32_t>() + t.numel());
}

td::T5Config tiny() { return td::T5Config::from_json_file(kFix + "tiny_config.json"); }

TEST(T5, RelativeBucketHandTable) {
  // num_buckets 32, max_distance 128, bidirectional; rel = key - query. Exact below 8, then
  // 8 + floor(log(|rel|/8) / log(16) * 8) capped at 15; +16 when the key is after the query.
  const int table[][2] = {{0, 0},     {-1, 1},    {-7, 7},     {-8, 8},     {-11, 8},    {-12, 9},   {-15, 9},
                          {-16, 10},  {-23, 11},  {-24, 11},   {-32, 12},   {-45, 12},   {-46, 13},  {-64, 14},
                          {-90, 14},  {-91, 15},  {-127, 15},  {-128, 15},  {-1000, 15}, {1, 17},    {7, 23},
                          {8, 24},    {12, 25},   {16, 26},    {32, 28},    {64, 30},    {127, 31},  {511, 31}};
  for (const auto& e : table)
    EXPECT_EQ(td::cpu::t5_relative_bucket(e[0], 32, 128, true), e[1]) << "rel " << e[0];
  // Unidirectional (decoder) form for completeness: only keys before the query get distinct buckets.
  EXPECT_EQ(td::cpu::t5_relative_bucket(5, 32, 128, false), 0);
  EXPECT_EQ(td::cpu::t5_relative_bucket(-5, 32, 128, false), 5);
  EXPECT_EQ(td::cpu::t5_relative_bucket(-200, 32, 128, false), 31);
}

TEST(T5, RelativeBucketMatchesTorch) {
  td::TensorMap ref = td::load_safetensors(kFix + "tiny_ref.safetensors");
  const td::Tensor& rel = ref.get("bucket_rel");
  const td::Tensor& val = ref.get("bucket_val");
  for (int64_t i = 0; i < rel.numel(); i++)
    ASSERT_EQ(td::cpu::t5_relative_bucket(rel.ptr<int32_t>()[i], 32, 128, true), val.ptr<int32_t>()[i])
        << "rel " << rel.ptr<int32_t>()[i];
}

void expect_matches_reference(td::T5Encoder& enc, double tol) {
  td::TensorMap ref = td::load_safetensors(kFix + "tiny_ref.safetensors");
  for (int i = 0; i < 4; i++) {
    auto ids = ids_of(ref.get(td::cat("ids_", i)));
    td::Tensor out = enc.encode(ids);
    const td::Tensor& want = ref.get(td::cat("emb_", i));
    ASSERT_EQ(out.shape(), want.shape());
    EXPECT_LT(td::test::nmse(out, want), tol) << "prompt " << i << " (" << ids.size() << " tokens)";
  }
}

TEST(T5, TinyEncoderMatchesPyTorchReference) {
  td::T5Options opt;
  auto enc = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  expect_matches_reference(*enc, 1e-9);
}

TEST(T5, PthCheckpointLoadsThroughTheSameCall) {
  td::T5Options opt;
  std::unique_ptr<td::T5Encoder> enc;
  try {
    enc = td::T5Encoder::load(kFix + "tiny_t5.pth", tiny(), opt);
  } catch (const td::Error& e) {
    FAIL() << "loading the .pth fixture failed: " << e.what();
  }
  expect_matches_reference(*enc, 1e-9);
}

TEST(T5, HuggingFaceKeyNamesLoad) {
  EXPECT_EQ(td::normalize_t5_key("encoder.block.3.layer.1.DenseReluDense.wi_0.weight"), "blocks.3.ffn.gate.0.weight");
  EXPECT_EQ(td::normalize_t5_key("encoder.block.11.layer.0.SelfAttention.relative_attention_bias.weight"),
            "blocks.11.pos_embedding.embedding.weight");
  EXPECT_EQ(td::normalize_t5_key("shared.weight"), "token_embedding.weight");
  EXPECT_EQ(td::normalize_t5_key("encoder.final_layer_norm.weight"), "norm.weight");
  EXPECT_EQ(td::normalize_t5_key("blocks.0.attn.q.weight"), "blocks.0.attn.q.weight");
  // Rename the Wan fixture to HF names (with the tied embedding twice, as HF stores it) and load that.
  td::TensorMap wan = td::load_safetensors(kFix + "tiny_t5.safetensors");
  std::map<std::string, std::string> to_hf = {{"norm1.weight", "layer.0.layer_norm.weight"},
                                              {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
                                              {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
                                              {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
                                              {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
                                              {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
                                              {"norm2.weight", "layer.1.layer_norm.weight"},
                                              {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
                                              {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
                                              {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"}};
  std::vector<std::pair<std::string, td::Tensor>> hf;
  for (const auto& kv : wan.all()) {
    std::string k = kv.first;
    if (k == "token_embedding.weight") {
      hf.push_back({"shared.weight", kv.second});
      hf.push_back({"encoder.embed_tokens.weight", kv.second});
      continue;
    }
    if (k == "norm.weight") {
      hf.push_back({"encoder.final_layer_norm.weight", kv.second});
      continue;
    }
    size_t dot = k.find('.', 7);
    std::string idx = k.substr(7, dot - 7), rest = k.substr(dot + 1);
    ASSERT_TRUE(to_hf.count(rest)) << k;
    hf.push_back({"encoder.block." + idx + "." + to_hf[rest], kv.second});
  }
  std::string path = std::string(TD_BINARY_DIR) + "/t5_tiny_hf.safetensors";
  td::save_safetensors(path, hf);
  td::T5Options opt;
  auto enc = td::T5Encoder::load(path, tiny(), opt);
  expect_matches_reference(*enc, 1e-9);
  std::remove(path.c_str());
}

TEST(T5, PaddingInvariance) {
  td::T5Options opt;
  auto enc = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  std::vector<int32_t> ids = {17, 5, 99, 42, 7, 1};
  td::Tensor base = enc->encode(ids);
  for (int pad : {1, 9, 40}) {
    std::vector<int32_t> p = ids, mask(ids.size(), 1);
    for (int i = 0; i < pad; i++) {
      p.push_back(i % 3 == 0 ? 0 : 100 + i);  // padding ids must not matter either
      mask.push_back(0);
    }
    td::Tensor out = enc->encode_padded(p, mask).slice(0, 0, int64_t(ids.size())).contiguous();
    EXPECT_LT(td::test::max_abs_diff(out, base), 1e-4) << "pad " << pad;
  }
}

TEST(T5, EmptyPromptEncodes) {
  td::T5Tokenizer tok(kFix + "spm_tiny.model");
  td::T5Options opt;
  auto enc = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  tok.check_embedding_rows(enc->embedding_rows(), "tiny_t5");
  auto t = tok.tokenize("");
  td::Tensor out = enc->encode(t.ids);
  EXPECT_EQ(out.shape(), td::Shape({1, 128}));
}

TEST(T5, Int8ErrorAgainstBf16) {
  td::T5Options opt;
  auto ref = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  opt.int8 = true;
  auto q = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; i++) ids.push_back((i * 37 + 3) % 256);
  double e = td::test::nmse(q->encode(ids), ref->encode(ids));
  std::printf("t5 int8 (group 128 / per-row) vs bf16 weights: NMSE %.3g\n", e);
  EXPECT_GT(e, 0.0);
  EXPECT_LT(e, 2e-3);
}

TEST(T5, Int8QuantizeRoundTrip) {
  td::Tensor w = td::test::randn({8, 256}, 3);
  auto m = td::cpu::t5_quantize_int8(w, 128);
  EXPECT_EQ(m.scales.shape(), td::Shape({8, 2}));
  std::vector<float> back(8 * 256);
  td::cpu::t5_dequantize_rows(m, 0, 8, back.data());
  for (int64_t i = 0; i < 8 * 256; i++) {
    float sc = m.scales.ptr<float>()[(i / 256) * 2 + (i % 256) / 128];
    ASSERT_LE(std::fabs(back[size_t(i)] - w.ptr<float>()[i]), 0.5f * sc + 1e-6f);
  }
}

TEST(T5, BadInputsNameTheirSubject) {
  td::T5Options opt;
  // The XXL default config against the tiny file: a shape mismatch naming the file and tensor.
  try {
    td::T5Encoder::load(kFix + "tiny_t5.safetensors", td::T5Config(), opt);
    FAIL() << "expected an error";
  } catch (const td::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("tiny_t5.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("token_embedding.weight"), std::string::npos) << m;
  }
  EXPECT_THROW(td::T5Encoder::load(kFix + "missing.safetensors", tiny(), opt), td::Error);
  auto enc = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), opt);
  EXPECT_THROW(enc->encode({5, 300, 1}), td::Error);  // id beyond the table
  EXPECT_THROW(enc->encode({}), td::Error);
  std::string cfg = std::string(TD_BINARY_DIR) + "/t5_bad_config.json";
  {
    std::ofstream f(cfg);
    f << "{\"dim\": 64, \"heads\": 4}";
  }
  EXPECT_THROW(td::T5Config::from_json_file(cfg), td::Error);
  {
    std::ofstream f(cfg);
    f << "{\"dim\": 64, \"dim_attn\": 60, \"num_heads\": 8}";
  }
  EXPECT_THROW(td::T5Config::from_json_file(cfg), td::Error);
  std::remove(cfg.c_str());
}

TEST(T5, RandomWeightsRunOnCpu) {
  td::T5Config c = tiny();
  td::T5Options opt;
  auto enc = td::T5Encoder::random(c, opt, 7);
  td::Tensor out = enc->encode({3, 4, 5, 1});
  EXPECT_EQ(out.shape(), td::Shape({4, 128}));
  for (int64_t i = 0; i < out.numel(); i++) ASSERT_TRUE(std::isfinite(out.ptr<float>()[i]));
}

}  // namespace
