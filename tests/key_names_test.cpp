// DiT key normalisation: official, diffusers, ComfyUI and training-wrapper names all map to the official set.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/key_names.h"
#include "test_util.h"

namespace td {
namespace {

// Official Wan names of a 2-block model, with the I2V (Wan2.1) extras (wan_spec.md §2.2).
std::vector<std::string> official_keys() {
  std::vector<std::string> k = {"patch_embedding.weight", "patch_embedding.bias"};
  for (const char* m : {"text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2",
                        "time_projection.1", "head.head", "img_emb.proj.0", "img_emb.proj.1", "img_emb.proj.3",
                        "img_emb.proj.4"})
    for (const char* p : {"weight", "bias"}) k.push_back(std::string(m) + "." + p);
  k.push_back("head.modulation");
  k.push_back("img_emb.emb_pos");
  for (int i = 0; i < 2; i++) {
    std::string b = "blocks." + std::to_string(i) + ".";
    k.push_back(b + "modulation");
    for (const char* a : {"self_attn", "cross_attn"}) {
      for (const char* l : {"q", "k", "v", "o"})
        for (const char* p : {"weight", "bias"}) k.push_back(b + a + "." + l + "." + p);
      k.push_back(b + a + ".norm_q.weight");
      k.push_back(b + a + ".norm_k.weight");
    }
    for (const char* l : {"k_img", "v_img"})
      for (const char* p : {"weight", "bias"}) k.push_back(b + "cross_attn." + l + "." + p);
    k.push_back(b + "cross_attn.norm_k_img.weight");
    for (const char* p : {"weight", "bias"}) {
      k.push_back(b + "norm3." + p);
      k.push_back(b + "ffn.0." + p);
      k.push_back(b + "ffn.2." + p);
    }
  }
  return k;
}

// official -> diffusers, written independently from the implementation (wan_spec.md §2.3 table, read left to right).
std::string to_diffusers(const std::string& k) {
  static const std::vector<std::pair<std::string, std::string>> top = {
      {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
      {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
      {"time_projection.1.", "condition_embedder.time_proj."},
      {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
      {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
      {"img_emb.proj.0.", "condition_embedder.image_embedder.norm1."},
      {"img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."},
      {"img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."},
      {"img_emb.proj.4.", "condition_embedder.image_embedder.norm2."},
      {"img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"},
      {"head.modulation", "scale_shift_table"},
      {"head.head.", "proj_out."},
  };
  for (auto& r : top)
    if (k.rfind(r.first, 0) == 0) return r.second + k.substr(r.first.size());
  if (k.rfind("blocks.", 0) != 0) return k;
  size_t dot = k.find('.', 7);
  std::string head = k.substr(0, dot + 1), rest = k.substr(dot + 1);
  static const std::vector<std::pair<std::string, std::string>> blk = {
      {"modulation", "scale_shift_table"},
      {"self_attn.o.", "attn1.to_out.0."},
      {"self_attn.norm_", "attn1.norm_"},
      {"self_attn.", "attn1.to_"},
      {"cross_attn.o.", "attn2.to_out.0."},
      {"cross_attn.k_img.", "attn2.add_k_proj."},
      {"cross_attn.v_img.", "attn2.add_v_proj."},
      {"cross_attn.norm_k_img.", "attn2.norm_added_k."},
      {"cross_attn.norm_", "attn2.norm_"},
      {"cross_attn.", "attn2.to_"},
      {"norm3.", "norm2."},
      {"ffn.0.", "ffn.net.0.proj."},
      {"ffn.2.", "ffn.net.2."},
  };
  for (auto& r : blk)
    if (rest.rfind(r.first, 0) == 0) return head + r.second + rest.substr(r.first.size());
  return k;
}

TensorMap map_of(const std::vector<std::string>& names) {
  TensorMap m;
  m.source = "test.safetensors";
  for (auto& n : names) m.put(n, Tensor::zeros({1}, DType::F32));
  return m;
}

TEST(KeyNames, AllSchemesMapToTheOfficialNames) {
  const std::vector<std::string> off = official_keys();
  const std::set<std::string> want(off.begin(), off.end());
  std::map<std::string, std::function<std::string(const std::string&)>> schemes = {
      {"official", [](const std::string& k) { return k; }},
      {"diffusers", to_diffusers},
      {"comfyui", [](const std::string& k) { return "model.diffusion_model." + k; }},
      {"rcm", [](const std::string& k) { return "net." + k; }},
      {"ddp+rcm", [](const std::string& k) { return "module.net." + k; }},
      {"compiled", [](const std::string& k) { return "_orig_mod." + k; }},
      {"fsdp",
       [](const std::string& k) {
         if (k.rfind("blocks.", 0) != 0) return "_checkpoint_wrapped_module.net." + k;
         size_t dot = k.find('.', 7);
         return "net." + k.substr(0, dot + 1) + "_checkpoint_wrapped_module." + k.substr(dot + 1);
       }},
      {"diffusers+module", [](const std::string& k) { return "module." + to_diffusers(k); }},
  };
  for (auto& s : schemes) {
    SCOPED_TRACE(s.first);
    std::vector<std::string> names;
    for (auto& k : off) names.push_back(s.second(k));
    if (s.first != "official") {
      EXPECT_NE(names, off);  // the scheme really renames something
    }
    TensorMap n = normalize_dit_keys(map_of(names));
    std::set<std::string> got;
    for (auto& kv : n.all()) got.insert(kv.first);
    EXPECT_EQ(got, want);
    EXPECT_EQ(n.source, "test.safetensors");
  }
}

TEST(KeyNames, SpecificMappings) {
  EXPECT_EQ(normalize_dit_key("blocks.7.norm2.weight"), "blocks.7.norm3.weight");
  EXPECT_EQ(normalize_dit_key("blocks.7.ffn.net.0.proj.bias"), "blocks.7.ffn.0.bias");
  EXPECT_EQ(normalize_dit_key("blocks.7.attn1.to_out.0.weight"), "blocks.7.self_attn.o.weight");
  EXPECT_EQ(normalize_dit_key("scale_shift_table"), "head.modulation");
  EXPECT_EQ(normalize_dit_key("blocks.12.scale_shift_table"), "blocks.12.modulation");
  EXPECT_EQ(normalize_dit_key("proj_out.weight"), "head.head.weight");
  EXPECT_EQ(normalize_dit_key("net.blocks.3._checkpoint_wrapped_module.ffn.0.weight"), "blocks.3.ffn.0.weight");
  // W8A8 and SLA tensors keep their suffixes.
  EXPECT_EQ(normalize_dit_key("net.blocks.0.self_attn.q.int8_weight"), "blocks.0.self_attn.q.int8_weight");
  EXPECT_EQ(normalize_dit_key("blocks.0.attn1.to_q.scale"), "blocks.0.self_attn.q.scale");
  EXPECT_EQ(normalize_dit_key("model.blocks.0.self_attn.attn_op.local_attn.proj_l.weight"),
            "blocks.0.self_attn.attn_op.local_attn.proj_l.weight");
  // Official names and unknown names are left alone; a lone wrapper word is not eaten.
  EXPECT_EQ(normalize_dit_key("blocks.0.norm3.bias"), "blocks.0.norm3.bias");
  EXPECT_EQ(normalize_dit_key("something.else"), "something.else");
  EXPECT_EQ(normalize_dit_key("model"), "model");
}

TEST(KeyNames, Norm2IsRenamedOnlyInDiffusersCheckpoints) {
  // An official-named checkpoint with a (parameter-free in Wan, but possibly present) norm2 buffer keeps it apart.
  TensorMap off = normalize_dit_keys(map_of({"net.blocks.0.norm3.weight", "net.blocks.0.norm2.weight"}));
  EXPECT_TRUE(off.has("blocks.0.norm3.weight"));
  EXPECT_TRUE(off.has("blocks.0.norm2.weight"));
  TensorMap dif = normalize_dit_keys(map_of({"blocks.0.norm2.weight", "blocks.0.attn1.to_q.weight"}));
  EXPECT_TRUE(dif.has("blocks.0.norm3.weight"));
  EXPECT_TRUE(dif.has("blocks.0.self_attn.q.weight"));
  EXPECT_EQ(normalize_dit_key("blocks.0.norm2.bias", false), "blocks.0.norm2.bias");
}

TEST(KeyNames, CollisionsAreErrors) {
  try {
    normalize_dit_keys(map_of({"net.head.modulation", "scale_shift_table"}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("test.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("net.head.modulation"), std::string::npos) << m;
    EXPECT_NE(m.find("scale_shift_table"), std::string::npos) << m;
  }
}

TEST(KeyNames, MissingAndUnusedAreReportedByName) {
  TensorMap m = map_of({"a.weight", "b.weight", "extra.weight", "opt.weight"});
  KeyReport r = compare_keys(m, {"a.weight", "b.weight", "c.weight"}, {"opt.weight", "img.weight"});
  EXPECT_EQ(r.missing, (std::vector<std::string>{"c.weight"}));
  EXPECT_EQ(r.unused, (std::vector<std::string>{"extra.weight"}));
  try {
    check_keys(m, {"a.weight", "c.weight", "d.bias"}, {}, "Wan DiT");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string s = e.what();
    for (const char* n : {"test.safetensors", "c.weight", "d.bias", "Wan DiT", "2 tensor"})
      EXPECT_NE(s.find(n), std::string::npos) << s;
  }
  auto unused = check_keys(m, {"a.weight", "b.weight"}, {"opt.weight"}, "Wan DiT");
  EXPECT_EQ(unused, (std::vector<std::string>{"extra.weight"}));
}

TEST(KeyNames, PatchEmbeddingConv3dIsALinearView) {
  Tensor conv = test::randn({8, 3, 1, 2, 2}, 5);
  conv.set_name("patch_embedding.weight");
  Tensor lin = patch_embedding_as_linear(conv, 8, 3);
  EXPECT_EQ(lin.shape(), (Shape{8, 12}));
  EXPECT_EQ(lin.data(), conv.data());  // zero-copy
  // Element (o, c*4 + kh*2 + kw) is conv[o, c, 0, kh, kw].
  EXPECT_EQ(lin.ptr<float>()[1 * 12 + 2 * 4 + 1 * 2 + 1], conv.ptr<float>()[((1 * 3 + 2) * 2 + 1) * 2 + 1]);
  Tensor l2 = patch_embedding_as_linear(lin, 8, 3);
  EXPECT_EQ(l2.data(), lin.data());
  EXPECT_THROW(patch_embedding_as_linear(conv, 16, 3), Error);
  EXPECT_THROW(patch_embedding_as_linear(conv, 8, 4), Error);
  EXPECT_THROW(patch_embedding_as_linear(test::randn({8, 3, 2, 2, 2}, 1)), Error);
  EXPECT_THROW(patch_embedding_as_linear(test::randn({8, 13}, 1)), Error);
  EXPECT_THROW(patch_embedding_as_linear(test::randn({8}, 1)), Error);
}

}  // namespace
}  // namespace td
