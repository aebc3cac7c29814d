#include "pipeline/wan_stages.h"

#include <future>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "io/image.h"
#include "io/key_names.h"
#include "io/tensor_map.h"
#include "io/video.h"
#include "model/dit/dit.h"
#include "model/tokenizer/tokenizer.h"
#include "model/vae/wan_vae.h"
#include "pipeline/generate.h"

namespace td {
namespace pipeline {

namespace {

class WanTextEncoder : public TextEncoder {
 public:
  WanTextEncoder(const GenerateOptions& o, const WanStageOptions& w) {
    T5Options opt;
    opt.device = w.device;
    opt.int8 = w.t5_int8;
    if (w.random_weights) {
      enc_ = T5Encoder::random(w.t5_config, opt, w.random_seed);
    } else {
      tok_ = std::make_unique<T5Tokenizer>(o.tokenizer);
      enc_ = T5Encoder::load(o.t5, w.t5_config, opt);
      tok_->check_embedding_rows(enc_->embedding_rows(), o.t5);
    }
  }
  Tensor encode(const std::string& prompt) override {
    std::vector<int32_t> ids;
    if (tok_) {
      ids = tok_->tokenize(prompt).ids;
    } else {  // random weights: a fixed-length prompt of plausible ids (timing depends only on the length)
      const int64_t vocab = enc_->embedding_rows();
      for (int64_t i = 0; i < 128; i++) ids.push_back(int32_t(2 + (100 + i * 37) % (vocab - 2)));
      ids.push_back(1);
    }
    return enc_->encode(ids);
  }

 private:
  std::unique_ptr<T5Tokenizer> tok_;
  std::unique_ptr<T5Encoder> enc_;
};

td::LinearMode dit_linear(LinearMode m) {
  switch (m) {
    case LinearMode::Auto: return td::LinearMode::Auto;
    case LinearMode::BF16: return td::LinearMode::Float;
    case LinearMode::W8A8: return td::LinearMode::W8A8;
  }
  return td::LinearMode::Auto;
}

class WanDenoiser : public Denoiser {
 public:
  WanDenoiser(const GenerateOptions& o, const WanStageOptions& w, const std::string& path) {
    DitOptions opt;
    opt.device = w.device;
    opt.attention.mode = o.attention;
    opt.attention.topk = o.topk;
    opt.linear = dit_linear(o.linear);
    // Whether a graph pays is decided in prepare(), once the latent size is known.
    opt.cuda_graph = o.cuda_graph && w.device == Device::CUDA;
    forwards_ = o.steps * (uses_cfg(o) ? 2 : 1) * o.num_samples;
    opt.offload = o.offload && w.device == Device::CUDA;
    if (w.random_weights) {
      DitConfig c = DitConfig::resolve(w.random_dit_preset, "", nullptr);  // a preset name or a config.json
      dit_ = WanDiT::random(c, opt, w.random_seed);
    } else {
      TensorMap m = normalize_dit_keys(load_checkpoint(path));
      DitConfig c = DitConfig::resolve(w.dit_config, path, &m);
      dit_ = WanDiT::from_tensors(m, c, opt);
    }
    // velocity() hands the DiT its own device copy of the context, which nothing writes into.
    if (w.device == Device::CUDA) dit_->set_context_reuse(true);
  }
  ~WanDenoiser() override {
    if (prefetch_.valid()) prefetch_.wait();
  }
  // A CUDA Graph saves the launch gaps of each replay but costs one capture and instantiation: at 480p (32,760
  // tokens) the gaps are ~0.3% of a 173 ms forward, and a 4-step rCM run took 3-9 ms longer with the graph (H100,
  // bench pipeline --phases, 0.725-0.727 vs 0.718-0.722 s). So long forwards run eagerly unless there are many of them
  // (the teacher samplers: 50 steps, twice with CFG).
  void prepare(const LatentShape& shape, bool) override {
    constexpr int64_t kEagerTokens = 8192;
    constexpr int kGraphForwards = 16;
    if (dit_->options().cuda_graph && shape.tokens() >= kEagerTokens && forwards_ < kGraphForwards) {
      dit_->set_cuda_graph(false);
      log_debug("dit: ", shape.tokens(), " tokens, ", forwards_, " forwards: no CUDA graph");
    }
  }
  // The next step's time modulation (host GEMVs, ~2.5 ms at 1.3B) is computed on another thread while this step's
  // network runs on the GPU. On the CPU backend the forward itself needs the cores, so nothing is done there.
  void prefetch_timestep(float t) override {
    if (dit_->options().device != Device::CUDA) return;
    if (prefetch_.valid()) prefetch_.wait();
    prefetch_ = std::async(std::launch::async, [this, t] {
      try {
        dit_->precompute_timestep(t);
      } catch (const std::exception& e) {
        log_debug("time modulation prefetch failed (computed in the forward instead): ", e.what());
      }
    });
  }
  Tensor velocity(const Tensor& x, float t, const Tensor& context, const Tensor* y) override {
    if (dit_->options().device != Device::CUDA) return dit_->forward(x, t, context, y);
    // On CUDA the latent goes up as f32 and is patchified there, and the context and y (the same every step) are
    // uploaded once: staging them on the host took 11-30 ms per step at 480p (single-threaded dtype conversions).
    const Tensor& ctx = device_copy(context, ctx_src_, ctx_dev_);
    const Tensor* yd = y && y->defined() ? &device_copy(*y, y_src_, y_dev_) : nullptr;
    return dit_->forward_device(x.to_f32_host().to(Device::CUDA), t, ctx, yd).to(Device::CPU);
  }
  std::string describe() const override {
    return cat(dit_->config().summary(), ", ", dit_->quantized() ? "w8a8" : "float", " linears, ",
               attention_mode_name(dit_->options().attention.mode), " attention, ",
               device_name(dit_->options().device), ", ", dit_->weight_bytes() >> 20, " MiB weights");
  }

 private:
  // An f32 device copy of `host`, made again only when `host` is another tensor than last time. The reference kept
  // in `src` holds the old buffer alive, so a new tensor cannot reuse its address and pass for it; the sampler
  // never writes into the context or y it hands over.
  static const Tensor& device_copy(const Tensor& host, Tensor& src, Tensor& dev) {
    if (!(src.defined() && src.data() == host.data() && src.shape() == host.shape() && src.dtype() == host.dtype() &&
          src.device() == host.device())) {
      dev = host.to_f32_host().contiguous().to(Device::CUDA);
      src = host;
    }
    return dev;
  }

  std::unique_ptr<WanDiT> dit_;
  int forwards_ = 0;  // network calls this run will make (upper bound for one expert)
  Tensor ctx_src_, ctx_dev_, y_src_, y_dev_;
  std::future<void> prefetch_;
};

class WanVaeStage : public Vae {
 public:
  WanVaeStage(const GenerateOptions& o, const WanStageOptions& w) {
    if (w.random_weights) {
      VaeConfig cfg;  // Wan2.1's real channel counts
      vae_.reset(new WanVae(WanVae::random_weights(cfg, w.random_seed), w.device, cfg));
    } else {
      vae_ = WanVae::load(o.vae, w.device);
    }
  }
  Tensor decode(const Tensor& z, const std::function<void(int, int)>& on_frame) override {
    return decode_streaming(z, on_frame, nullptr);
  }
  Tensor decode_streaming(const Tensor& z, const std::function<void(int, int)>& on_frame,
                          const std::function<void(const Tensor&, int64_t, int64_t)>& on_frames) override {
    on_frame(0, int(z.size(1)));
    VaeDecodeOptions opts;
    opts.on_frame = on_frame;    // called after each decoder call: (latent frames done, total)
    opts.on_frames = on_frames;  // empty: no streaming
    return vae_->decode(z, opts);
  }
  Tensor encode(const Tensor& video) override { return vae_->encode(video); }

 private:
  std::unique_ptr<WanVae> vae_;
};

}  // namespace

StageFactory make_wan_stages(const GenerateOptions& o, const WanStageOptions& w) {
  StageFactory f;
  f.text_encoder = [o, w]() -> std::unique_ptr<TextEncoder> { return std::make_unique<WanTextEncoder>(o, w); };
  f.denoiser = [o, w](const std::string&, const std::string& path) -> std::unique_ptr<Denoiser> {
    return std::make_unique<WanDenoiser>(o, w, path);
  };
  f.vae = [o, w]() -> std::unique_ptr<Vae> { return std::make_unique<WanVaeStage>(o, w); };
  f.write_video = [](const std::string& path, const Tensor& frames, int fps) { write_video(path, frames, fps); };
  f.open_video = [](const std::string& path, int fps) { return VideoWriter::open(path, fps); };
  f.image_size = [](const std::string& path) -> Size {
    Size s;
    read_image_size(path, &s.width, &s.height);
    return s;
  };
  // Cover-and-center-crop keeps the image undistorted when its aspect ratio differs from the target's.
  f.load_image = [](const std::string& path, Size s) -> Tensor { return load_image_for_i2v(path, s.width, s.height); };
  if (w.device == Device::CUDA) f.release_memory = [] { device_empty_cache(); };
  return f;
}

}  // namespace pipeline
}  // namespace td
