// The Wan DiT on CPU against the float64 PyTorch reference (scripts/ref/wan_dit_ref.py via
// scripts/fixtures/make_dit_fixtures.py), plus config handling, loading errors and the `turbodiff dit` command.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "io/key_names.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/dit/dit.h"
#include "test_util.h"

namespace td {
namespace {

std::string fixture(const std::string& variant, const std::string& file) {
  return std::string(TD_SOURCE_DIR) + "/tests/fixtures/dit/" + variant + "/" + file;
}

struct Inputs {
  Tensor x, t, context, y, expected;
};

Inputs read_inputs(const std::string& variant) {
  TensorMap in = load_safetensors(fixture(variant, "inputs.safetensors"));
  Inputs r;
  r.x = in.get("x").to_f32_host();
  r.t = in.get("t").to_f32_host();
  r.context = in.get("context").to_f32_host();
  if (in.has("y")) r.y = in.get("y").to_f32_host();
  r.expected = load_safetensors(fixture(variant, "expected.safetensors")).get("out").to_f32_host();
  return r;
}

Tensor run(WanDiT& dit, const Inputs& in) {
  return dit.forward(in.x, in.t.ptr<float>()[0], in.context, in.y.defined() ? &in.y : nullptr);
}

DitOptions cpu_opts() {
  DitOptions o;
  o.device = Device::CPU;
  return o;
}

// f32 against float64: the PyTorch f32 forward itself is at ~2e-13 on these fixtures.
constexpr double kF32Nmse = 1e-10;

TEST(DitForward, T2vSafetensorsMatchesReference) {
  const std::string w = fixture("t2v", "model.safetensors");
  DitConfig cfg = DitConfig::resolve("", w, nullptr);  // config.json beside the weights
  EXPECT_EQ(cfg.dim, 64);
  EXPECT_EQ(cfg.num_heads, 2);
  EXPECT_EQ(cfg.text_dim, 32);
  auto dit = WanDiT::load(w, cfg, cpu_opts());
  Inputs in = read_inputs("t2v");
  Tensor out = run(*dit, in);
  ASSERT_EQ(out.shape(), in.expected.shape());
  const double e = test::nmse(out, in.expected);
  EXPECT_LT(e, kF32Nmse);
  // A second call reuses the workspace and the cached time embedding: same result.
  Tensor again = run(*dit, in);
  EXPECT_EQ(test::max_abs_diff(out, again), 0.0);
}

TEST(DitForward, T2vPthWithConvPatchAndPrefixMatchesReference) {
  const std::string w = fixture("t2v", "model.pth");
  auto dit = WanDiT::load(w, DitConfig::from_json_file(fixture("t2v", "config.json")), cpu_opts());
  Inputs in = read_inputs("t2v");
  EXPECT_LT(test::nmse(run(*dit, in), in.expected), kF32Nmse);
}

TEST(DitForward, I2vMatchesReference) {
  const std::string w = fixture("i2v", "model.safetensors");
  DitConfig cfg = DitConfig::resolve("", w, nullptr);
  EXPECT_EQ(cfg.model_type, "i2v");
  EXPECT_EQ(cfg.y_dim(), 20);
  auto dit = WanDiT::load(w, cfg, cpu_opts());
  Inputs in = read_inputs("i2v");
  EXPECT_LT(test::nmse(run(*dit, in), in.expected), kF32Nmse);
  // Changing t changes the output (the time path is live).
  Tensor other = dit->forward(in.x, 10.f, in.context, &in.y);
  EXPECT_GT(test::nmse(other, in.expected), 1e-4);
}

// A float checkpoint in official names for any config: fan-in scaled weights, small biases, norms near 1.
TensorMap random_map(const DitConfig& c, uint64_t seed) {
  TensorMap m;
  m.source = "random-map";
  const int64_t D = c.dim, F = c.ffn_dim;
  auto lin = [&](const std::string& n, int64_t o, int64_t i) {
    m.put(n + ".weight", test::randn({o, i}, seed++, float(1.0 / std::sqrt(double(i)))));
    m.put(n + ".bias", test::randn({o}, seed++, 0.1f));
  };
  lin("patch_embedding", D, c.in_dim * 4);
  lin("text_embedding.0", D, c.text_dim);
  lin("text_embedding.2", D, D);
  lin("time_embedding.0", D, c.freq_dim);
  lin("time_embedding.2", D, D);
  lin("time_projection.1", 6 * D, D);
  lin("head.head", c.out_dim * 4, D);
  m.put("head.modulation", test::randn({1, 2, D}, seed++, float(1.0 / std::sqrt(double(D)))));
  for (int i = 0; i < c.num_layers; i++) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* n : {"self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                          "cross_attn.v", "cross_attn.o"})
      lin(b + n, D, D);
    lin(b + "ffn.0", F, D);
    lin(b + "ffn.2", D, F);
    for (const char* n : {"self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k", "norm3"})
      m.put(b + n + ".weight", test::randn({D}, seed++, 0.1f, 1.0f));
    m.put(b + "norm3.bias", test::randn({D}, seed++, 0.1f));
    m.put(b + "modulation", test::randn({1, 6, D}, seed++, float(1.0 / std::sqrt(double(D)))));
  }
  return m;
}

// Replaces every block linear weight by TurboDiffusion's -quant form (int8 + 128x128 tile scales, amax/128, round
// to nearest, saturate), and returns the float map of the dequantized values too.
void quantize_map(const TensorMap& m, TensorMap& q, TensorMap& deq) {
  q.source = deq.source = "synthetic-quant";
  for (auto& kv : m.all()) {
    const std::string& n = kv.first;
    const bool block_linear_weight = n.rfind("blocks.", 0) == 0 && kv.second.dim() == 2 &&
                                     n.find(".weight") == n.size() - 7 && n.find("proj_l") == std::string::npos;
    if (!block_linear_weight) {
      q.put(n, kv.second);
      deq.put(n, kv.second);
      continue;
    }
    Tensor w = kv.second.to_f32_host().contiguous();
    const int64_t N = w.size(0), K = w.size(1), tn = (N + 127) / 128, tk = (K + 127) / 128;
    Tensor qi = Tensor::empty({N, K}, DType::I8), sc = Tensor::empty({tn, tk}, DType::F32),
           dq = Tensor::empty({N, K}, DType::F32);
    for (int64_t bi = 0; bi < tn; bi++)
      for (int64_t bk = 0; bk < tk; bk++) {
        float amax = 1e-8f;
        for (int64_t i = bi * 128; i < std::min(N, bi * 128 + 128); i++)
          for (int64_t k = bk * 128; k < std::min(K, bk * 128 + 128); k++)
            amax = std::max(amax, std::fabs(w.ptr<float>()[i * K + k]));
        const float s = amax / 128.f;
        sc.ptr<float>()[bi * tk + bk] = s;
        for (int64_t i = bi * 128; i < std::min(N, bi * 128 + 128); i++)
          for (int64_t k = bk * 128; k < std::min(K, bk * 128 + 128); k++) {
            float v = std::nearbyint(w.ptr<float>()[i * K + k] / s);
            v = std::min(127.f, std::max(-128.f, v));
            qi.ptr<int8_t>()[i * K + k] = int8_t(v);
            dq.ptr<float>()[i * K + k] = v * s;
          }
      }
    const std::string base = n.substr(0, n.size() - 7);
    q.put(base + ".int8_weight", qi);
    q.put(base + ".scale", sc);
    deq.put(n, dq);
  }
}

// A TurboDiffusion -quant style checkpoint run with --linear bf16: dequantized at load, it must equal the float
// model holding the dequantized weights.
TEST(DitForward, QuantCheckpointDequantizesAtLoad) {
  TensorMap m = normalize_dit_keys(load_checkpoint(fixture("t2v", "model.safetensors")));
  TensorMap q, deq;
  quantize_map(m, q, deq);
  DitConfig cfg = DitConfig::from_json_file(fixture("t2v", "config.json"));
  DitOptions o = cpu_opts();
  o.linear = LinearMode::Float;
  auto a = WanDiT::from_tensors(q, cfg, o);
  EXPECT_FALSE(a->quantized());
  auto b = WanDiT::from_tensors(deq, cfg, o);
  Inputs in = read_inputs("t2v");
  Tensor oa = run(*a, in), ob = run(*b, in);
  EXPECT_EQ(test::max_abs_diff(oa, ob), 0.0);
  // Quantization moved the result, but not far.
  EXPECT_GT(test::nmse(oa, in.expected), 0.0);
  EXPECT_LT(test::nmse(oa, in.expected), 1e-2);
  // Auto picks W8A8 for a quantized checkpoint; dim 64 is not a multiple of 128, so it must say so.
  o.linear = LinearMode::Auto;
  try {
    WanDiT::from_tensors(q, cfg, o);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("w8a8"), std::string::npos) << e.what();
  }
}

// W8A8 block linears (dims multiples of 128): close to the float model; a -quant checkpoint (Auto) and a float
// checkpoint quantized at load (--linear w8a8) give the same model.
TEST(DitForward, W8A8LinearsOnCpu) {
  DitConfig c = DitConfig::from_json_file(fixture("t2v", "config.json"));
  c.dim = 128;
  c.num_heads = 1;
  c.ffn_dim = 256;
  c.text_dim = 128;
  c.validate("test");
  DitOptions fo = cpu_opts(), qo = cpu_opts();
  fo.linear = LinearMode::Float;
  qo.linear = LinearMode::W8A8;
  auto f = WanDiT::random(c, fo, 21), qm = WanDiT::random(c, qo, 21);
  EXPECT_FALSE(f->quantized());
  EXPECT_TRUE(qm->quantized());
  Tensor x = test::randn({16, 2, 8, 10}, 1), ctx = test::randn({20, 128}, 2);
  Tensor of = f->forward(x, 800.f, ctx), oq = qm->forward(x, 800.f, ctx);
  const double e = test::nmse(oq, of);
  std::printf("[ w8a8 vs float, random dim-128 model ] nmse %.3e\n", e);
  EXPECT_GT(e, 0.0);
  EXPECT_LT(e, 1e-3);

  // The same through checkpoints: a float map, its -quant form (Auto -> W8A8), and the float map quantized at load.
  TensorMap fm = random_map(c, 5), qmap, deq;
  quantize_map(fm, qmap, deq);
  auto from_quant = WanDiT::from_tensors(qmap, c, cpu_opts());  // Auto
  EXPECT_TRUE(from_quant->quantized());
  auto at_load = WanDiT::from_tensors(fm, c, qo);
  EXPECT_TRUE(at_load->quantized());
  auto as_float = WanDiT::from_tensors(fm, c, fo);
  Tensor a1 = from_quant->forward(x, 300.f, ctx), a2 = at_load->forward(x, 300.f, ctx),
         a3 = as_float->forward(x, 300.f, ctx);
  std::printf("[ -quant checkpoint vs quantized at load ] nmse %.3e; vs float %.3e\n", test::nmse(a1, a2),
              test::nmse(a1, a3));
  EXPECT_LT(test::nmse(a1, a2), 1e-8);
  EXPECT_GT(test::nmse(a1, a3), 0.0);
  EXPECT_LT(test::nmse(a1, a3), 1e-3);
}

TEST(DitForward, ProjLIsAcceptedAndOtherExtrasAreNotFatal) {
  TensorMap m = load_checkpoint(fixture("t2v", "model.safetensors"));
  m.put("blocks.0.self_attn.attn_op.local_attn.proj_l.weight", test::randn({32, 32}, 1));
  m.put("blocks.0.self_attn.attn_op.local_attn.proj_l.bias", test::randn({32}, 2));
  m.put("some.unused.tensor", test::randn({3}, 3));
  auto dit = WanDiT::from_tensors(m, DitConfig::from_json_file(fixture("t2v", "config.json")), cpu_opts());
  Inputs in = read_inputs("t2v");
  EXPECT_LT(test::nmse(run(*dit, in), in.expected), kF32Nmse);  // dense attention ignores proj_l
}

TEST(DitForward, MissingOrMisshapenTensorsAreNamed) {
  DitConfig cfg = DitConfig::from_json_file(fixture("t2v", "config.json"));
  {
    TensorMap m = load_checkpoint(fixture("t2v", "model.safetensors"));
    m.erase("blocks.1.cross_attn.norm_k.weight");
    try {
      WanDiT::from_tensors(m, cfg, cpu_opts());
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("blocks.1.cross_attn.norm_k.weight"), std::string::npos) << e.what();
    }
  }
  {
    TensorMap m = load_checkpoint(fixture("t2v", "model.safetensors"));
    m.put("blocks.0.cross_attn.k_img.weight", test::randn({64, 64}, 4));
    try {
      WanDiT::from_tensors(m, cfg, cpu_opts());
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("CLIP"), std::string::npos) << e.what();
    }
  }
  {
    TensorMap m = load_checkpoint(fixture("t2v", "model.safetensors"));
    m.put("blocks.0.ffn.0.weight", test::randn({64, 64}, 4));
    try {
      WanDiT::from_tensors(m, cfg, cpu_opts());
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("blocks.0.ffn.0.weight"), std::string::npos) << e.what();
    }
  }
}

TEST(DitForward, InputShapeErrors) {
  auto dit = WanDiT::load(fixture("i2v", "model.safetensors"),
                          DitConfig::from_json_file(fixture("i2v", "config.json")), cpu_opts());
  Inputs in = read_inputs("i2v");
  auto expect_error = [&](const Tensor& x, const Tensor& ctx, const Tensor* y, const char* subject) {
    try {
      dit->forward(x, 500.f, ctx, y);
      ADD_FAILURE() << "expected an error about " << subject;
    } catch (const Error& e) {
      EXPECT_EQ(e.subject(), subject) << e.what();
    }
  };
  expect_error(test::randn({15, 3, 8, 12}, 1), in.context, &in.y, "x");   // channels
  expect_error(test::randn({16, 3, 7, 12}, 2), in.context, &in.y, "x");   // odd height
  expect_error(test::randn({16, 3, 8}, 3), in.context, &in.y, "x");       // rank
  expect_error(in.x, test::randn({7, 31}, 4), &in.y, "context");          // width
  expect_error(in.x, test::randn({513, 32}, 5), &in.y, "context");        // too many rows
  expect_error(in.x, in.context, nullptr, "y");                           // i2v without y
  Tensor ybad = test::randn({20, 3, 8, 10}, 6);
  expect_error(in.x, in.context, &ybad, "y");
  auto t2v = WanDiT::load(fixture("t2v", "model.safetensors"),
                          DitConfig::from_json_file(fixture("t2v", "config.json")), cpu_opts());
  EXPECT_THROW(t2v->forward(in.x, 1.f, in.context, &in.y), Error);        // y for a t2v model
}

TEST(DitConfig, PresetsJsonAndInference) {
  DitConfig c = DitConfig::preset("wan2.1-t2v-1.3b");
  EXPECT_EQ(c.dim, 1536);
  EXPECT_EQ(c.ffn_dim, 8960);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(DitConfig::preset("wan2.2-i2v-a14b").in_dim, 36);
  EXPECT_EQ(DitConfig::preset("wan2.1-t2v-14b").num_layers, 40);
  EXPECT_THROW(DitConfig::preset("wan9"), Error);
  // Official config.json of the 1.3B resolves to the preset's name.
  DitConfig j = DitConfig::from_json_text(
      R"({"_class_name":"WanModel","_diffusers_version":"0.30.0","dim":1536,"eps":1e-06,"ffn_dim":8960,)"
      R"("freq_dim":256,"in_dim":16,"model_type":"t2v","num_heads":12,"num_layers":30,"out_dim":16,"text_len":512})",
      "config.json");
  EXPECT_EQ(j.name, "wan2.1-t2v-1.3b");
  // diffusers' config.json.
  DitConfig d = DitConfig::from_json_text(
      R"({"_class_name":"WanTransformer3DModel","attention_head_dim":128,"num_attention_heads":40,"ffn_dim":13824,)"
      R"("in_channels":36,"out_channels":16,"num_layers":40,"text_dim":4096,"freq_dim":256,"eps":1e-6})",
      "diffusers.json");
  EXPECT_EQ(d.name, "wan2.2-i2v-a14b");
  EXPECT_THROW(DitConfig::from_json_text("{\"dim\": 64}", "bad.json"), Error);
  EXPECT_THROW(DitConfig::from_json_text(R"({"dim":64,"ffn_dim":128,"num_heads":3,"num_layers":1})", "h.json"),
               Error);  // 64 % 3
  // Inference from shapes (head_dim 128): a 2-layer dim-256 i2v model.
  TensorMap m;
  m.source = "shapes";
  auto put = [&](const std::string& n, Shape s) { m.put(n, Tensor::empty(s, DType::BF16)); };
  put("patch_embedding.weight", {256, 36, 1, 2, 2});
  put("text_embedding.0.weight", {256, 4096});
  put("time_embedding.0.weight", {256, 256});
  put("head.head.weight", {64, 256});
  put("blocks.0.ffn.0.weight", {512, 256});
  put("blocks.1.modulation", {1, 6, 256});
  DitConfig inf = DitConfig::infer(m);
  EXPECT_EQ(inf.dim, 256);
  EXPECT_EQ(inf.num_heads, 2);
  EXPECT_EQ(inf.num_layers, 2);
  EXPECT_EQ(inf.in_dim, 36);
  EXPECT_EQ(inf.out_dim, 16);
  EXPECT_EQ(inf.ffn_dim, 512);
  EXPECT_EQ(inf.model_type, "i2v");
  // The tiny fixture (dim 64) cannot be inferred with head_dim 128: a clear error pointing at --config.
  TensorMap tiny = normalize_dit_keys(load_checkpoint(fixture("t2v", "model.safetensors")));
  try {
    DitConfig::infer(tiny);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--config"), std::string::npos) << e.what();
  }
}

TEST(DitForward, RandomWeightsAreDeterministicAndFinite) {
  DitConfig c = DitConfig::from_json_file(fixture("t2v", "config.json"));
  auto a = WanDiT::random(c, cpu_opts(), 7), b = WanDiT::random(c, cpu_opts(), 7), d = WanDiT::random(c, cpu_opts(), 8);
  Inputs in = read_inputs("t2v");
  Tensor oa = run(*a, in), ob = run(*b, in), od = run(*d, in);
  EXPECT_EQ(test::max_abs_diff(oa, ob), 0.0);
  EXPECT_GT(test::nmse(oa, od), 1e-3);
  EXPECT_TRUE(std::isfinite(test::nmse(oa, od)));
}

// forward_device on a CPU model returns the host result; CUDA-only options are harmless on the CPU.
TEST(DitForward, ForwardDeviceAndCudaOnlyOptionsOnCpu) {
  DitConfig c = DitConfig::from_json_file(fixture("t2v", "config.json"));
  DitOptions o = cpu_opts();
  auto plain = WanDiT::random(c, o, 7);
  o.cuda_graph = true;
  o.offload = true;  // warns and is ignored
  auto flagged = WanDiT::random(c, o, 7);
  Inputs in = read_inputs("t2v");
  Tensor ref = run(*plain, in);
  for (int i = 0; i < 3; i++) {
    Tensor d = flagged->forward_device(in.x, in.t.ptr<float>()[0], in.context, nullptr);
    EXPECT_FALSE(d.is_cuda());
    EXPECT_EQ(test::max_abs_diff(d, ref), 0.0);
  }
  EXPECT_FALSE(flagged->graph_captured());
  EXPECT_EQ(flagged->weight_bytes(), plain->weight_bytes());
}

// ---- the `turbodiff dit` command ----

std::string bin() { return std::string(TD_BINARY_DIR) + "/bin/turbodiff"; }

int sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(DitCommand, EndToEndMatchesReference) {
  ASSERT_TRUE(std::ifstream(bin()).good()) << bin() << " not built";
  for (const char* v : {"t2v", "i2v"}) {
    const std::string out = std::string(TD_BINARY_DIR) + "/dit_cmd_" + v + ".safetensors";
    std::remove(out.c_str());
    ASSERT_EQ(sh(bin() + " dit --device cpu --weights " + fixture(v, "model.safetensors") + " --inputs " +
                 fixture(v, "inputs.safetensors") + " --output " + out),
              0);
    TensorMap o = load_safetensors(out);
    Inputs in = read_inputs(v);
    EXPECT_LT(test::nmse(o.get("out"), in.expected), kF32Nmse) << v;
  }
}

// A sharded checkpoint (two shards + *.safetensors.index.json, bf16 like the published 14B files) with the
// config.json beside the index: the command finds both. bf16 weights move the result, so compare against the
// float64 reference loosely and against the same weights loaded in-process exactly.
TEST(DitCommand, ShardedIndexWithConfigBeside) {
  ASSERT_TRUE(std::ifstream(bin()).good()) << bin() << " not built";
  const std::string dir = std::string(TD_BINARY_DIR) + "/dit_sharded";
  ASSERT_EQ(sh("mkdir -p " + dir + " && cp " + fixture("t2v", "config.json") + " " + dir + "/config.json"), 0);
  TensorMap m = load_checkpoint(fixture("t2v", "model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> s1, s2;
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  bool first = true;
  for (auto& kv : m.all()) {
    const bool second = kv.first.rfind("blocks.1.", 0) == 0 || kv.first.rfind("head", 0) == 0;
    (second ? s2 : s1).push_back({kv.first, kv.second.to(DType::BF16)});
    index += std::string(first ? "" : ", ") + "\"" + kv.first + "\": \"" +
             (second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors") + "\"";
    first = false;
  }
  index += "}}";
  save_safetensors(dir + "/model-00001-of-00002.safetensors", s1);
  save_safetensors(dir + "/model-00002-of-00002.safetensors", s2);
  const std::string idx = dir + "/model.safetensors.index.json";
  std::ofstream(idx) << index;
  const std::string out = dir + "/out.safetensors";
  ASSERT_EQ(sh(bin() + " dit --device cpu --weights " + idx + " --inputs " + fixture("t2v", "inputs.safetensors") +
               " --output " + out),
            0);
  Inputs in = read_inputs("t2v");
  Tensor got = load_safetensors(out).get("out");
  EXPECT_LT(test::nmse(got, in.expected), 1e-3);
  auto dit = WanDiT::load(idx, DitConfig::resolve("", idx, nullptr), cpu_opts());
  EXPECT_EQ(test::max_abs_diff(got, run(*dit, in)), 0.0);
}

TEST(DitCommand, BadInputsFailCleanly) {
  ASSERT_TRUE(std::ifstream(bin()).good()) << bin() << " not built";
  const std::string dir = std::string(TD_BINARY_DIR);
  const std::string w = fixture("t2v", "model.safetensors"), out = dir + "/dit_cmd_bad.safetensors";
  // Missing weights file.
  EXPECT_EQ(sh(bin() + " dit --device cpu --weights /nonexistent/w.safetensors --inputs " +
               fixture("t2v", "inputs.safetensors") + " --output " + out),
            1);
  // Inputs with a misnamed tensor.
  const std::string bad = dir + "/dit_bad_inputs.safetensors";
  save_safetensors(bad, {{"latent", test::randn({16, 3, 8, 12}, 1)}, {"t", Tensor::from_f32({1}, {500.f})},
                         {"context", test::randn({4, 32}, 2)}});
  EXPECT_EQ(sh(bin() + " dit --device cpu --weights " + w + " --inputs " + bad + " --output " + out), 1);
  // Wrong x shape.
  save_safetensors(bad, {{"x", test::randn({16, 3, 7, 12}, 1)}, {"t", Tensor::from_f32({1}, {500.f})},
                         {"context", test::randn({4, 32}, 2)}});
  EXPECT_EQ(sh(bin() + " dit --device cpu --weights " + w + " --inputs " + bad + " --output " + out), 1);
  // Unknown preset.
  EXPECT_EQ(sh(bin() + " dit --device cpu --config wan3 --weights " + w + " --inputs " +
               fixture("t2v", "inputs.safetensors") + " --output " + out),
            1);
  // --offload without a GPU.
  EXPECT_EQ(sh(bin() + " dit --device cpu --offload --weights " + w + " --inputs " + fixture("t2v", "inputs.safetensors") +
               " --output " + out),
            1);
  // A config whose shapes do not fit the weights.
  EXPECT_EQ(sh(bin() + " dit --device cpu --config wan2.1-t2v-1.3b --weights " + w + " --inputs " +
               fixture("t2v", "inputs.safetensors") + " --output " + out),
            1);
}

}  // namespace
}  // namespace td
