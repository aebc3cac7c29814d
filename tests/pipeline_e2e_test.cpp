// Whole runs on tiny models on the CPU: the `t2v` / `i2v` options parsed as on the command line, the checks before
// loading, the real umT5 (tiny fixture + tiny SentencePiece model), a tiny random Wan DiT written here as an
// official-key safetensors file, the tiny Wan VAE fixture, and the video read back: an MP4 in FFmpeg builds, a PNG
// frame directory otherwise (the same frames reach either writer, so the CPU/GPU comparisons run in both builds).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "pipeline/checks.h"
#include "pipeline/cli.h"
#include "pipeline/t2v.h"
#include "pipeline/wan_stages.h"
#include "test_util.h"

namespace td {
namespace pipeline {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& rel) { return std::string(TD_SOURCE_DIR) + "/tests/fixtures/" + rel; }

struct TempDir {
  std::string path;
  TempDir() {
    path = (fs::temp_directory_path() / ("td_pipe_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(std::random_device{}()))).string();
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A tiny Wan DiT (dim 128 = one 128-wide head, 2 blocks, text_dim 128 to match the tiny umT5) with official keys.
void write_tiny_dit(const std::string& path, int in_dim, bool proj_l, uint64_t seed) {
  const int64_t D = 128, F = 256, T = 128;
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, Tensor>> ts;
  auto add = [&](const std::string& name, const Shape& s, float stdev, float mean = 0.f) {
    Tensor t = Tensor::empty(s, DType::F32);
    std::normal_distribution<float> d(mean, stdev);
    for (int64_t i = 0; i < t.numel(); i++) t.ptr<float>()[i] = d(rng);
    ts.push_back({name, t.to(DType::BF16)});
  };
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    add(n + ".weight", {out, in}, 1.f / std::sqrt(float(in)));
    add(n + ".bias", {out}, 0.01f);
  };
  add("patch_embedding.weight", {D, in_dim, 1, 2, 2}, 0.1f);
  add("patch_embedding.bias", {D}, 0.01f);
  lin("text_embedding.0", D, T);
  lin("text_embedding.2", D, D);
  lin("time_embedding.0", D, 256);
  lin("time_embedding.2", D, D);
  lin("time_projection.1", 6 * D, D);
  add("head.modulation", {1, 2, D}, 0.02f);
  lin("head.head", 16 * 4, D);
  for (int b = 0; b < 2; b++) {
    std::string p = "blocks." + std::to_string(b) + ".";
    add(p + "modulation", {1, 6, D}, 0.02f);
    for (const char* a : {"self_attn", "cross_attn"}) {
      for (const char* l : {"q", "k", "v", "o"}) lin(p + a + "." + l, D, D);
      add(p + a + ".norm_q.weight", {D}, 0.05f, 1.f);
      add(p + a + ".norm_k.weight", {D}, 0.05f, 1.f);
    }
    if (proj_l) lin(p + "self_attn.attn_op.local_attn.proj_l", 128, 128);
    add(p + "norm3.weight", {D}, 0.05f, 1.f);
    add(p + "norm3.bias", {D}, 0.01f);
    lin(p + "ffn.0", F, D);
    lin(p + "ffn.2", D, F);
  }
  save_safetensors(path, ts);
}

// Output path for a video named `stem` in dir: stem.mp4 with FFmpeg, else a frame directory stem_frames/.
std::string video_out(const std::string& dir, const std::string& stem) {
  return dir + "/" + stem + (ffmpeg_available() ? ".mp4" : "_frames");
}

// Reads back what the pipeline wrote: an MP4 (FFmpeg builds), or frame_00000.png, ... of a frame directory as
// u8 [T, H, W, 3].
Tensor read_output(const std::string& path) {
  if (video_is_container_path(path)) return read_video(path);
  std::vector<Tensor> frames;
  for (int t = 0;; t++) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%05d.png", t);
    if (!fs::exists(path + name)) break;
    frames.push_back(read_image(path + name));
  }
  // A mismatch yields a shape the callers' ASSERT_EQ/EXPECT_EQ on the shape reports.
  if (frames.empty()) return Tensor::empty({0}, DType::U8);
  const Shape f = frames[0].shape();
  Tensor v = Tensor::empty({int64_t(frames.size()), f[0], f[1], f[2]}, DType::U8);
  for (size_t t = 0; t < frames.size(); t++) {
    if (frames[t].shape() != f) return Tensor::empty({int64_t(t), 0}, DType::U8);
    Tensor c = frames[t].contiguous();
    std::memcpy(v.ptr<uint8_t>() + t * size_t(c.numel()), c.ptr<uint8_t>(), size_t(c.numel()));
  }
  return v;
}

std::vector<std::string> common_args(const std::string& out, bool geometry = true) {
  std::vector<std::string> a = {"--t5", fixture("t5/tiny_t5.safetensors"), "--t5-config", fixture("t5/tiny_config.json"),
          "--tokenizer", fixture("t5/spm_tiny.model"), "--vae", fixture("vae/tiny_vae.safetensors"),
          "-p", "a small red fox runs through snow", "-o", out, "--attention", "dense", "--device", "cpu",
          "--no-progress"};
  if (geometry) a.insert(a.end(), {"--size", "32x32", "--frames", "5"});
  return a;
}

// Parses args as `turbodiff <mode> ...` and runs the command; returns its exit code (td::Error propagates).
int run_cli(Mode mode, const std::vector<std::string>& args) {
  CLI::App app;
  CliState st;
  add_generate_options(app, mode, st);
  std::vector<std::string> rev(args.rbegin(), args.rend());
  app.parse(rev);
  return run_generate_command(st, mode);
}

// MP4 in FFmpeg builds, PNG frames otherwise.
TEST(PipelineE2E, TinyT2VWritesValidVideoAndIsReproducible) {
  TempDir tmp;
  std::string dit = tmp.path + "/TurboWan-tiny-T2V.safetensors";
  write_tiny_dit(dit, 16, true, 1);
  std::string out1 = video_out(tmp.path, "a"), out2 = video_out(tmp.path, "b");
  auto args = common_args(out1);
  args.insert(args.end(), {"--dit", dit, "--seed", "7", "--json"});
  ASSERT_EQ(run_cli(Mode::T2V, args), 0);
  Tensor v = read_output(out1);
  ASSERT_EQ(v.shape(), (Shape{5, 32, 32, 3}));
  args = common_args(out2);
  args.insert(args.end(), {"--dit", dit, "--seed", "7"});
  ASSERT_EQ(run_cli(Mode::T2V, args), 0);
  EXPECT_EQ(test::max_abs_diff(v, read_output(out2)), 0.0);  // same seed, same video
}

// Without FFmpeg an MP4 output is refused up front (naming -o and the way out); with it, a frame directory still
// works. Either way the other form is exercised here.
TEST(PipelineE2E, TinyT2VOtherOutputForm) {
  TempDir tmp;
  std::string dit = tmp.path + "/TurboWan-tiny-T2V.safetensors";
  write_tiny_dit(dit, 16, false, 1);
  if (!ffmpeg_available()) {
    auto args = common_args(tmp.path + "/a.mp4");
    args.insert(args.end(), {"--dit", dit});
    try {
      run_cli(Mode::T2V, args);
      ADD_FAILURE() << "accepted an MP4 output without FFmpeg";
    } catch (const Error& e) {
      EXPECT_EQ(e.subject(), "-o") << e.what();
      EXPECT_NE(std::string(e.what()).find("PNG"), std::string::npos) << e.what();
    }
    return;
  }
  std::string out = tmp.path + "/frames";
  auto args = common_args(out);
  args.insert(args.end(), {"--dit", dit});
  ASSERT_EQ(run_cli(Mode::T2V, args), 0);
  EXPECT_EQ(read_output(out).shape(), (Shape{5, 32, 32, 3}));
}

// The same run through the engine API on a device, returning the final latent (for CPU/GPU comparisons).
Tensor tiny_t2v_latent(const std::string& dit, const std::string& out, Device dev, AttentionMode att, LinearMode lin,
                       uint64_t seed, int size = 32, int frames = 5) {
  GenerateOptions o;
  o.dit = dit;
  o.t5 = fixture("t5/tiny_t5.safetensors");
  o.tokenizer = fixture("t5/spm_tiny.model");
  o.vae = fixture("vae/tiny_vae.safetensors");
  o.prompt = "a small red fox runs through snow";
  o.output = out;
  o.width = o.height = size;
  o.frames = frames;
  o.attention = att;
  o.linear = lin;
  o.seed = seed;
  o.progress = false;
  preflight(o);
  WanStageOptions w;
  w.device = dev;
  w.t5_config = T5Config::from_json_file(fixture("t5/tiny_config.json"));
  StageFactory f = make_wan_stages(o, w);
  GenerateReport r = run_t2v(o, f);
  EXPECT_EQ(read_output(out).shape(), (Shape{frames, size, size, 3}));
  return r.latents.at(0);
}

TEST(PipelineE2E, TinyT2VOnCudaMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  TempDir tmp;
  std::string dit = tmp.path + "/dit.safetensors";
  write_tiny_dit(dit, 16, true, 1);
  const std::string c = video_out(tmp.path, "c"), o1 = video_out(tmp.path, "g1"), o2 = video_out(tmp.path, "g2");
  Tensor cpu = tiny_t2v_latent(dit, c, Device::CPU, AttentionMode::Dense, LinearMode::BF16, 3);
  Tensor g1 = tiny_t2v_latent(dit, o1, Device::CUDA, AttentionMode::Dense, LinearMode::BF16, 3);
  Tensor g2 = tiny_t2v_latent(dit, o2, Device::CUDA, AttentionMode::Dense, LinearMode::BF16, 3);
  EXPECT_EQ(test::max_abs_diff(g1, g2), 0.0) << "same seed, same GPU: the latent must repeat exactly";
  EXPECT_EQ(test::max_abs_diff(read_output(o1), read_output(o2)), 0.0);
  // bf16 weights/activations on the GPU vs f32 on the CPU, through 4 steps.
  EXPECT_LT(test::nmse(g1, cpu), 1e-3);
}

TEST(PipelineE2E, TinyT2VOnCudaSageSlaW8A8) {
  TD_SKIP_WITHOUT_CUDA();
  TempDir tmp;
  std::string dit = tmp.path + "/dit.safetensors";
  write_tiny_dit(dit, 16, true, 1);
  // 128x128, 9 frames: 3 x 8 x 8 = 192 tokens, enough for several attention blocks.
  Tensor cpu = tiny_t2v_latent(dit, video_out(tmp.path, "c"), Device::CPU, AttentionMode::SageSLA, LinearMode::W8A8,
                               5, 128, 9);
  Tensor gpu = tiny_t2v_latent(dit, video_out(tmp.path, "g"), Device::CUDA, AttentionMode::SageSLA, LinearMode::W8A8,
                               5, 128, 9);
  EXPECT_LT(test::nmse(gpu, cpu), 1e-2);
}

TEST(PipelineE2E, TinyI2VWithTwoExperts) {
  TempDir tmp;
  std::string high = tmp.path + "/TurboWan-tiny-I2V-high.safetensors", low = tmp.path + "/TurboWan-tiny-I2V-low.safetensors";
  write_tiny_dit(high, 36, true, 2);
  write_tiny_dit(low, 36, true, 3);
  Tensor img = test::randint8({24, 40, 3}, 4, 0, 127);  // 0..127 as u8 bytes
  Tensor img8 = Tensor::empty({24, 40, 3}, DType::U8);
  for (int64_t i = 0; i < img.numel(); i++) img8.ptr<uint8_t>()[i] = uint8_t(img.ptr<int8_t>()[i] * 2);
  write_png(tmp.path + "/in.png", img8);
  std::string out = video_out(tmp.path, "i2v");
  auto args = common_args(out);
  args.insert(args.end(), {"--dit-high", high, "--dit-low", low, "-i", tmp.path + "/in.png", "--ode"});
  ASSERT_EQ(run_cli(Mode::I2V, args), 0);
  EXPECT_EQ(read_output(out).shape(), (Shape{5, 32, 32, 3}));
}

TEST(PipelineE2E, BadInputIsRejectedBeforeLoading) {
  TempDir tmp;
  std::string dit = tmp.path + "/t2v.safetensors", i2v = tmp.path + "/i2v.safetensors";
  write_tiny_dit(dit, 16, false, 1);
  write_tiny_dit(i2v, 36, false, 1);
  auto expect_flag = [&](std::vector<std::string> extra, Mode mode, const std::string& flag) {
    bool geometry = std::find(extra.begin(), extra.end(), "--size") == extra.end() &&
                    std::find(extra.begin(), extra.end(), "--frames") == extra.end();
    auto args = common_args(video_out(tmp.path, "x"), geometry);
    for (auto& e : extra) {  // a flag given in `extra` replaces the default one (CLI11 rejects repeats)
      auto it = std::find(args.begin(), args.end(), e);
      if (!e.empty() && e[0] == '-' && it != args.end()) args.erase(it, it + 2);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      run_cli(mode, args);
      ADD_FAILURE() << "accepted bad input for " << flag;
    } catch (const Error& e) {
      EXPECT_EQ(e.subject(), flag) << e.what();
    }
  };
  expect_flag({"--dit", dit, "--size", "40x32"}, Mode::T2V, "--size");
  expect_flag({"--dit", dit, "--frames", "6"}, Mode::T2V, "--frames");
  expect_flag({"--dit", dit, "--steps", "5"}, Mode::T2V, "--steps");
  expect_flag({"--dit", dit, "--steps", "0"}, Mode::T2V, "--steps");
  expect_flag({"--dit", tmp.path + "/missing.pth"}, Mode::T2V, "--dit");
  expect_flag({"--dit", dit, "--vae", tmp.path + "/missing_vae.pth"}, Mode::T2V, "--vae");
  std::fclose(std::fopen((tmp.path + "/a_file").c_str(), "w"));
  expect_flag({"--dit", dit, "-o", video_out(tmp.path + "/a_file", "x")}, Mode::T2V, "-o");  // parent is no directory
  expect_flag({"--dit", dit, "-o", tmp.path + "/a_file"}, Mode::T2V, "-o");  // a frame directory that is a file
  if (!ffmpeg_available()) expect_flag({"--dit", dit, "-o", tmp.path + "/x.mp4"}, Mode::T2V, "-o");
  expect_flag({"--dit", i2v}, Mode::T2V, "--dit");                               // i2v weights for t2v
  Tensor px = Tensor::zeros({8, 8, 3}, DType::U8);
  write_png(tmp.path + "/x.png", px);
  expect_flag({"--dit-high", dit, "--dit-low", dit, "-i", tmp.path + "/x.png"}, Mode::I2V, "--dit-high");
  expect_flag({"--dit-high", i2v, "--dit-low", i2v, "-i", tmp.path + "/missing.png"}, Mode::I2V, "--image");  // t2v weights for i2v
  expect_flag({"--dit", dit, "--vae", fixture("t5/tiny_t5.safetensors")}, Mode::T2V, "--vae");  // not a VAE
  expect_flag({"--dit", fixture("vae/tiny_vae.safetensors")}, Mode::T2V, "--dit");            // not a DiT
  expect_flag({"--dit", dit, "--neg-prompt", "blurry"}, Mode::T2V, "--neg-prompt");            // rCM has no CFG
  expect_flag({"--dit", dit, "--sigma-max", "-3"}, Mode::T2V, "--sigma-max");
}

TEST(PipelineE2E, SlaWithoutProjLWarns) {
  TempDir tmp;
  std::string plain = tmp.path + "/plain.safetensors", sla = tmp.path + "/sla.safetensors";
  write_tiny_dit(plain, 16, false, 1);
  write_tiny_dit(sla, 16, true, 1);
  GenerateOptions o;
  o.attention = AttentionMode::SageSLA;
  std::vector<std::string> notes;
  DitCheck c = check_dit_checkpoint(plain, "--dit", o, &notes);
  EXPECT_FALSE(c.has_proj_l);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("proj_l"), std::string::npos);
  notes.clear();
  c = check_dit_checkpoint(sla, "--dit", o, &notes);
  EXPECT_TRUE(c.has_proj_l);
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(c.config.dim, 128);
}

TEST(PipelineE2E, ModelDirFindsUsualNames) {
  TempDir tmp;
  fs::create_directories(tmp.path + "/google/umt5-xxl");
  for (const char* n : {"TurboWan2.1-T2V-1.3B-480P.pth", "TurboWan2.1-T2V-1.3B-480P-quant.pth",
                        "models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth", "google/umt5-xxl/spiece.model",
                        "TurboWan2.2-I2V-A14B-high-720P-quant.pth", "TurboWan2.2-I2V-A14B-low-720P-quant.pth"})
    std::fclose(std::fopen((tmp.path + "/" + n).c_str(), "w"));
  GenerateOptions o;
  o.linear = LinearMode::W8A8;
  resolve_model_dir(tmp.path, o);
  EXPECT_EQ(fs::path(o.dit).filename(), "TurboWan2.1-T2V-1.3B-480P-quant.pth");
  EXPECT_EQ(fs::path(o.t5).filename(), "models_t5_umt5-xxl-enc-bf16.pth");
  EXPECT_EQ(fs::path(o.vae).filename(), "Wan2.1_VAE.pth");
  EXPECT_EQ(fs::path(o.tokenizer).filename(), "spiece.model");
  GenerateOptions b;
  b.linear = LinearMode::BF16;
  b.dit = "/given.pth";  // flags given win
  resolve_model_dir(tmp.path, b);
  EXPECT_EQ(b.dit, "/given.pth");
  GenerateOptions i;
  i.mode = Mode::I2V;
  resolve_model_dir(tmp.path, i);
  EXPECT_EQ(fs::path(i.dit_high).filename(), "TurboWan2.2-I2V-A14B-high-720P-quant.pth");
  EXPECT_EQ(fs::path(i.dit_low).filename(), "TurboWan2.2-I2V-A14B-low-720P-quant.pth");
  EXPECT_THROW(resolve_model_dir(tmp.path + "/nope", i), Error);
}

TEST(PipelineE2E, ResolutionTables) {
  EXPECT_EQ(resolution_size("480p", "16:9").width, 832);
  EXPECT_EQ(resolution_size("480p", "9:16").height, 832);
  EXPECT_EQ(resolution_size("720p", "4:3").width, 960);
  EXPECT_EQ(resolution_size("720p", "1:1").height, 960);
  EXPECT_THROW(resolution_size("1080p", "16:9"), Error);
  EXPECT_THROW(resolution_size("480p", "2:1"), Error);
  Size a = adaptive_size({1280, 720}, 1000, 1000);  // square image, 720p area
  EXPECT_EQ(a.width % 16, 0);
  EXPECT_EQ(a.width, a.height);
  EXPECT_NEAR(double(a.width) * a.height, 1280.0 * 720.0, 1280.0 * 720.0 * 0.03);
  LatentShape l = latent_shape({832, 480}, 81);
  EXPECT_EQ(l.frames, 21);
  EXPECT_EQ(l.tokens(), 32760);
  EXPECT_THROW(parse_size("832"), Error);
  EXPECT_EQ(parse_size("832x480").height, 480);
}

}  // namespace
}  // namespace pipeline
}  // namespace td
