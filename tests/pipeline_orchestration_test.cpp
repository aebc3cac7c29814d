// The t2v/i2v orchestration with fake stages: memory phases (one model alive at a time), the i2v expert switch,
// CFG passes, seed reproducibility, output naming, the conditioning tensor and the out-of-memory message.
#include <cmath>
#include <map>
#include <vector>

#include "core/error.h"
#include "pipeline/i2v.h"
#include "pipeline/rng.h"
#include "pipeline/t2v.h"
#include "test_util.h"

namespace td {
namespace pipeline {
namespace {

struct Log {
  std::vector<std::string> events;
  int alive = 0, max_alive = 0;
  void born(const std::string& s) {
    events.push_back("+" + s);
    max_alive = std::max(max_alive, ++alive);
  }
  void died(const std::string& s) {
    events.push_back("-" + s);
    alive--;
  }
};

class FakeText : public TextEncoder {
 public:
  explicit FakeText(Log* l) : l_(l) { l_->born("text"); }
  ~FakeText() override { l_->died("text"); }
  Tensor encode(const std::string& p) override {
    l_->events.push_back("encode:" + p);
    return Tensor::from_f32({2, 4}, {float(p.size()), 1, 2, 3, 4, 5, 6, 7});
  }
  Log* l_;
};

// v = 0.5 x + context[0,0] * 0.01 + t * 1e-4 (+ 0.1 * y mean for i2v): deterministic and input-dependent.
class FakeNet : public Denoiser {
 public:
  FakeNet(Log* l, std::string role) : l_(l), role_(std::move(role)) { l_->born(role_); }
  ~FakeNet() override { l_->died(role_); }
  Tensor velocity(const Tensor& x, float t, const Tensor& ctx, const Tensor* y) override {
    l_->events.push_back(cat("fwd:", role_, ":", t, ":", ctx.ptr<float>()[0]));
    Tensor v = Tensor::empty(x.shape(), DType::F32);
    double ym = y ? y->ptr<float>()[0] : 0.0;
    for (int64_t i = 0; i < x.numel(); i++)
      v.ptr<float>()[i] = float(0.5 * x.ptr<float>()[i] + 0.01 * ctx.ptr<float>()[0] + 1e-4 * t + 0.1 * ym);
    return v;
  }
  Log* l_;
  std::string role_;
};

class FakeVae : public Vae {
 public:
  explicit FakeVae(Log* l) : l_(l) { l_->born("vae"); }
  ~FakeVae() override { l_->died("vae"); }
  Tensor decode(const Tensor& z, const std::function<void(int, int)>& cb) override {
    int T = int(z.size(1));
    Tensor v = Tensor::zeros({3, 1 + 4 * (T - 1), z.size(2) * 8, z.size(3) * 8}, DType::F32);
    v.ptr<float>()[0] = std::tanh(z.ptr<float>()[0]);
    for (int i = 1; i <= T; i++) cb(i, T);
    return v;
  }
  Tensor encode(const Tensor& video) override {
    l_->events.push_back("vae-encode");
    Tensor z = Tensor::zeros({16, 1 + (video.size(1) - 1) / 4, video.size(2) / 8, video.size(3) / 8}, DType::F32);
    z.ptr<float>()[0] = video.ptr<float>()[0];
    return z;
  }
  Log* l_;
};

StageFactory fake_factory(Log* log, std::map<std::string, Tensor>* written) {
  StageFactory f;
  f.text_encoder = [log] { return std::unique_ptr<TextEncoder>(new FakeText(log)); };
  f.denoiser = [log](const std::string& role, const std::string&) {
    return std::unique_ptr<Denoiser>(new FakeNet(log, role));
  };
  f.vae = [log] { return std::unique_ptr<Vae>(new FakeVae(log)); };
  f.write_video = [log, written](const std::string& p, const Tensor& frames, int fps) {
    log->events.push_back("write:" + p);
    (*written)[p] = frames;
  };
  f.image_size = [](const std::string&) { return Size{64, 48}; };
  f.load_image = [](const std::string&, Size s) {
    Tensor t = Tensor::zeros({3, s.height, s.width}, DType::F32);
    t.ptr<float>()[0] = 0.75f;
    return t;
  };
  return f;
}

GenerateOptions small_t2v() {
  GenerateOptions o;
  o.prompt = "a cat";
  o.width = 32;
  o.height = 16;
  o.frames = 5;
  o.progress = false;
  o.output = "out.mp4";
  return o;
}

TEST(PipelineOrchestration, T2VPhasesRunOneModelAtATime) {
  Log log;
  std::map<std::string, Tensor> written;
  StageFactory f = fake_factory(&log, &written);
  GenerateOptions o = small_t2v();
  GenerateReport r = run_t2v(o, f);
  EXPECT_EQ(log.max_alive, 1);
  EXPECT_EQ(log.alive, 0);
  // Text encoder gone before the DiT, DiT gone before the VAE.
  std::vector<std::string> lifecycle;
  for (auto& e : log.events)
    if (e[0] == '+' || e[0] == '-') lifecycle.push_back(e);
  EXPECT_EQ(lifecycle, (std::vector<std::string>{"+text", "-text", "+dit", "-dit", "+vae", "-vae"}));
  // rCM, 4 steps, no CFG: exactly 4 forwards at the bf16-rounded times 988, 932, 852, 608.
  std::vector<std::string> fwd;
  for (auto& e : log.events)
    if (e.rfind("fwd:", 0) == 0) fwd.push_back(e);
  EXPECT_EQ(fwd, (std::vector<std::string>{"fwd:dit:988:5", "fwd:dit:932:5", "fwd:dit:852:5", "fwd:dit:608:5"}));
  ASSERT_EQ(r.outputs, (std::vector<std::string>{"out.mp4"}));
  ASSERT_TRUE(written.count("out.mp4"));
  EXPECT_EQ(written["out.mp4"].shape(), (Shape{5, 16, 32, 3}));
  EXPECT_EQ(r.latent.frames, 2);
  EXPECT_GT(r.stage_seconds("diffusion"), 0.0);
  nlohmann::json j = r.to_json(o);
  EXPECT_EQ(j["seed"], 0);
  EXPECT_EQ(j["options"]["sampler"], "rcm");
  EXPECT_EQ(j["timesteps"].size(), 4u);
  EXPECT_TRUE(j.contains("peak_gpu_bytes"));
  EXPECT_FALSE(j["stages"].empty());
}

TEST(PipelineOrchestration, SeedReproducibility) {
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  GenerateOptions o = small_t2v();
  o.seed = 1234;
  GenerateReport a = run_t2v(o, f), b = run_t2v(o, f);
  EXPECT_EQ(test::max_abs_diff(a.latents[0], b.latents[0]), 0.0);
  o.seed = 1235;
  GenerateReport c = run_t2v(o, f);
  EXPECT_GT(test::max_abs_diff(a.latents[0], c.latents[0]), 0.1);
  // ODE mode uses no noise after the first draw: still seed-dependent, still reproducible.
  o.ode = true;
  GenerateReport d = run_t2v(o, f), e = run_t2v(o, f);
  EXPECT_EQ(test::max_abs_diff(d.latents[0], e.latents[0]), 0.0);
}

TEST(PipelineOrchestration, RcmLatentMatchesHandComputedLoop) {
  // Two steps with the fake net and the documented RNG draws, recomputed here step by step.
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  GenerateOptions o = small_t2v();
  o.steps = 2;
  o.seed = 9;
  GenerateReport r = run_t2v(o, f);
  std::vector<double> t = rcm_times(2, 80.0);
  Shape s{16, 2, 2, 4};
  Tensor n0 = randn(s, 9, noise_draw(0, 0)), n1 = randn(s, 9, noise_draw(0, 1));
  const double tn[2] = {988.0, 932.0};
  for (int64_t i = 0; i < n0.numel(); i++) {
    double x = double(n0.ptr<float>()[i]) * t[0];
    double v = double(float(0.5 * double(float(x)) + 0.01 * 5.0 + 1e-4 * tn[0]));
    x = (1 - t[1]) * (x - t[0] * v) + t[1] * double(n1.ptr<float>()[i]);
    v = double(float(0.5 * double(float(x)) + 0.01 * 5.0 + 1e-4 * tn[1]));
    x = x - t[1] * v;
    ASSERT_NEAR(r.latents[0].ptr<float>()[i], x, 1e-5) << i;
  }
}

TEST(PipelineOrchestration, TeacherSamplerRunsCfgWithDefaultNegativePrompt) {
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  GenerateOptions o = small_t2v();
  o.sampler = SamplerKind::UniPC;
  o.steps = 3;
  GenerateReport r = run_t2v(o, f);
  int fwd = 0, enc = 0;
  for (auto& e : log.events) {
    if (e.rfind("fwd:", 0) == 0) fwd++;
    if (e.rfind("encode:", 0) == 0) enc++;
  }
  EXPECT_EQ(fwd, 6);  // cond + uncond per step
  EXPECT_EQ(enc, 2);
  EXPECT_NE(std::find(log.events.begin(), log.events.end(), std::string("encode:") + kWanDefaultNegativePrompt),
            log.events.end());
  // guidance 1: no negative pass.
  Log log2;
  StageFactory f2 = fake_factory(&log2, &w);
  o.guidance = 1.0;
  o.sampler = SamplerKind::Euler;
  run_t2v(o, f2);
  fwd = 0;
  for (auto& e : log2.events)
    if (e.rfind("fwd:", 0) == 0) fwd++;
  EXPECT_EQ(fwd, 3);
  EXPECT_EQ(r.net_timesteps.size(), 3u);
}

TEST(PipelineOrchestration, I2VSwitchesExpertsOnceAndConditions) {
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  GenerateOptions o = small_t2v();
  o.mode = Mode::I2V;
  o.sigma_max = 200;
  o.image = "in.png";
  o.width = o.height = 0;
  o.adaptive_resolution = false;
  o.resolution = "480p";
  o.num_samples = 2;
  GenerateReport r = run_i2v(o, f);
  EXPECT_EQ(log.max_alive, 1);
  EXPECT_EQ(r.experts, (std::vector<std::string>{"high", "high", "low", "low"}));
  std::vector<std::string> lifecycle;
  for (auto& e : log.events)
    if (e[0] == '+' || e[0] == '-') lifecycle.push_back(e);
  // The VAE encodes, leaves; one switch high -> low for both samples; the VAE decodes.
  EXPECT_EQ(lifecycle, (std::vector<std::string>{"+text", "-text", "+vae", "-vae", "+high", "-high", "+low", "-low",
                                                 "+vae", "-vae"}));
  EXPECT_EQ(r.outputs, (std::vector<std::string>{"out_0.mp4", "out_1.mp4"}));
  EXPECT_EQ(r.size.width, 832);
  EXPECT_EQ(r.size.height, 480);
  // Two samples from one seed get different noise streams.
  EXPECT_GT(test::max_abs_diff(r.latents[0], r.latents[1]), 0.1);
}

TEST(PipelineOrchestration, I2VConditionTensor) {
  Tensor z = test::randn({16, 3, 2, 2}, 5);
  Tensor y = i2v_condition(z);
  ASSERT_EQ(y.shape(), (Shape{20, 3, 2, 2}));
  for (int c = 0; c < 4; c++)
    for (int f = 0; f < 3; f++)
      for (int i = 0; i < 4; i++) EXPECT_EQ(y.ptr<float>()[(c * 3 + f) * 4 + i], f == 0 ? 1.f : 0.f);
  for (int64_t i = 0; i < z.numel(); i++) EXPECT_EQ(y.ptr<float>()[4 * 12 + i], z.ptr<float>()[i]);
  EXPECT_THROW(i2v_condition(test::randn({8, 3, 2, 2}, 5)), Error);
}

TEST(PipelineOrchestration, OutOfMemoryNamesTheWayOut) {
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  f.denoiser = [](const std::string&, const std::string&) -> std::unique_ptr<Denoiser> {
    fail("GPU memory", "out of GPU memory allocating 4096 MiB");
  };
  try {
    run_t2v(small_t2v(), f);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("--offload"), std::string::npos) << m;
    EXPECT_NE(m.find("--resolution"), std::string::npos) << m;
    EXPECT_NE(m.find("dit load"), std::string::npos) << m;
  }
}

TEST(PipelineOrchestration, RejectsBadInputBeforeAnyModelLoads) {
  Log log;
  std::map<std::string, Tensor> w;
  StageFactory f = fake_factory(&log, &w);
  GenerateOptions o = small_t2v();
  o.frames = 6;
  EXPECT_THROW(run_t2v(o, f), Error);
  o = small_t2v();
  o.width = 40;
  EXPECT_THROW(run_t2v(o, f), Error);
  o = small_t2v();
  o.steps = 5;
  EXPECT_THROW(run_t2v(o, f), Error);
  EXPECT_TRUE(log.events.empty());
}

TEST(PipelineOrchestration, SampleOutputPaths) {
  EXPECT_EQ(sample_output_path("a/b.mp4", 0, 1), "a/b.mp4");
  EXPECT_EQ(sample_output_path("a/b.mp4", 2, 3), "a/b_2.mp4");
  EXPECT_EQ(sample_output_path("a.d/frames", 1, 2), "a.d/frames_1");
}

}  // namespace
}  // namespace pipeline
}  // namespace td
