// `turbodiff dit`: one Wan DiT forward on saved inputs (the verification contract of issue #2):
//   turbodiff dit --weights W [--config C] --inputs IN.safetensors --output OUT.safetensors
//                 [--device cpu|cuda] [--attention dense|sla|sagesla] [--topk R] [--linear bf16|w8a8] [--offload]
// IN: x f32 [in_dim_noise,F,H,W], t f32 [1], context f32 [L<=text_len,text_dim], optional y f32 [y_dim,F,H,W].
// OUT: out f32 [out_dim,F,H,W].
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "io/key_names.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/dit/dit.h"

namespace {

struct Args {
  std::string weights, config, inputs, output, device = "auto", attention = "dense", linear = "auto";
  float topk = 0.1f;
  bool offload = false;
};

td::Tensor input(const td::TensorMap& in, const std::string& name, const std::string& path) {
  const td::Tensor* t = in.find(name);
  TD_CHECK(t, path, "has no tensor '", name, "'");
  TD_CHECK(td::dtype_is_float(t->dtype()), path, "tensor '", name, "' has dtype ", td::dtype_name(t->dtype()),
           "; expected f32");
  return t->to_f32_host().contiguous().set_name(name);
}

int run(const Args& a) {
  using namespace td;
  // Inputs first: they are small, and a bad file should fail before a large model is read.
  TensorMap in = load_safetensors(a.inputs);
  for (auto& kv : in.all())
    TD_CHECK(kv.first == "x" || kv.first == "t" || kv.first == "context" || kv.first == "y", a.inputs,
             "unexpected tensor '", kv.first, "' (expected x, t, context and optionally y)");
  Tensor x = input(in, "x", a.inputs), t = input(in, "t", a.inputs), ctx = input(in, "context", a.inputs);
  TD_CHECK(t.numel() == 1 && t.dim() <= 1, a.inputs, "tensor 't' must be f32 [1], got ", shape_str(t.shape()));
  Tensor y;
  if (in.has("y")) y = input(in, "y", a.inputs);

  DitOptions opts;
  opts.device = cli::resolve_device(a.device) ? Device::CUDA : Device::CPU;
  opts.attention.mode = parse_attention_mode(a.attention);
  TD_CHECK(a.topk > 0.f && a.topk <= 1.f, "--topk", "must be in (0, 1], got ", a.topk);
  opts.attention.topk = a.topk;
  opts.linear = parse_linear_mode(a.linear);
  TD_CHECK(!a.offload || opts.device == Device::CUDA, "--offload", "streams blocks to a CUDA device; use --device cuda");
  opts.offload = a.offload;

  auto t0 = std::chrono::steady_clock::now();
  TensorMap raw = load_checkpoint(a.weights);
  TensorMap m = normalize_dit_keys(raw);
  DitConfig cfg = DitConfig::resolve(a.config, a.weights, &m);
  auto dit = WanDiT::from_tensors(m, cfg, opts);
  raw = TensorMap();
  m = TensorMap();
  auto t1 = std::chrono::steady_clock::now();
  Tensor out;
  try {
    out = dit->forward(x, t.ptr<float>()[0], ctx, y.defined() ? &y : nullptr);
  } catch (const Error& e) {
    const std::string& s = e.subject();
    if (s == "x" || s == "y" || s == "t" || s == "context") fail(a.inputs, e.what());  // name the file too
    throw;
  }
  auto t2 = std::chrono::steady_clock::now();
  save_safetensors(a.output, {{"out", out}});
  log_info("dit: ", cfg.name, " on ", device_name(opts.device), ", load ",
           std::chrono::duration<double>(t1 - t0).count(), " s, forward ",
           std::chrono::duration<double>(t2 - t1).count(), " s -> ", a.output, " ", shape_str(out.shape()));
  return 0;
}

td::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--weights", a->weights, "DiT checkpoint: .safetensors, .safetensors.index.json or .pth")
      ->required();
  app.add_option("--config", a->config,
                 "preset (wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.2-t2v-a14b, wan2.2-i2v-a14b) or config.json; "
                 "default: config.json next to the weights, else inferred from tensor shapes");
  app.add_option("--inputs", a->inputs, "safetensors with x, t, context and optionally y")->required();
  app.add_option("--output", a->output, "safetensors to write with 'out'")->required();
  td::cli::add_device_option(app, &a->device);
  app.add_option("--attention", a->attention, "self-attention: dense, sla or sagesla")
      ->check(CLI::IsMember({"dense", "sla", "sagesla"}));
  app.add_option("--topk", a->topk, "fraction of key blocks kept by sla/sagesla (default 0.1)");
  app.add_option("--linear", a->linear, "block linears: bf16 (f32 on cpu) or w8a8; default: as the checkpoint")
      ->check(CLI::IsMember({"auto", "bf16", "w8a8"}));
  app.add_flag("--offload", a->offload,
               "keep block weights in pinned host memory and stream them to the GPU (two blocks resident)");
  return [a]() { return run(*a); };
}

td::cli::Command reg("dit", "Run one Wan DiT forward on saved inputs", setup);

}  // namespace
