#include "pipeline/options.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/video.h"

namespace td {
namespace pipeline {

namespace fs = std::filesystem;

const char* mode_name(Mode m) { return m == Mode::T2V ? "t2v" : "i2v"; }

const char* linear_mode_name(LinearMode m) {
  switch (m) {
    case LinearMode::Auto: return "auto";
    case LinearMode::BF16: return "bf16";
    case LinearMode::W8A8: return "w8a8";
  }
  return "?";
}

LinearMode parse_linear_mode(const std::string& s) {
  if (s == "auto") return LinearMode::Auto;
  if (s == "bf16") return LinearMode::BF16;
  if (s == "w8a8") return LinearMode::W8A8;
  fail("--linear", cat("unknown linear mode '", s, "' (expected auto, bf16 or w8a8)"));
}

Size resolution_size(const std::string& res, const std::string& aspect) {
  int row;
  if (aspect == "16:9") row = 0;
  else if (aspect == "9:16") row = 1;
  else if (aspect == "4:3") row = 2;
  else if (aspect == "1:1") row = 3;
  else fail("--aspect", cat("unknown aspect ratio '", aspect, "' (expected 16:9, 9:16, 4:3 or 1:1)"));
  static const Size k480[4] = {{832, 480}, {480, 832}, {640, 480}, {640, 640}};
  static const Size k720[4] = {{1280, 720}, {720, 1280}, {960, 720}, {960, 960}};
  if (res == "480p") return k480[row];
  if (res == "720p") return k720[row];
  fail("--resolution", cat("unknown resolution '", res, "' (expected 480p or 720p)"));
}

Size adaptive_size(Size table, int iw, int ih) {
  TD_CHECK(iw > 0 && ih > 0, "--image", "image has no pixels");
  const double area = double(table.width) * table.height, ar = double(ih) / iw;
  auto round16 = [](double v) { return std::max(16, int(std::lround(v / 16.0)) * 16); };
  return {round16(std::sqrt(area / ar)), round16(std::sqrt(area * ar))};
}

Size parse_size(const std::string& s) {
  Size out;
  char x = 0;
  char tail = 0;
  int n = std::sscanf(s.c_str(), "%d%c%d%c", &out.width, &x, &out.height, &tail);
  TD_CHECK(n == 3 && (x == 'x' || x == 'X' || x == '*') && out.width > 0 && out.height > 0, "--size",
           "expected WIDTHxHEIGHT such as 832x480, got '", s, "'");
  return out;
}

LatentShape latent_shape(Size s, int frames) {
  LatentShape l;
  l.frames = 1 + (frames - 1) / 4;
  l.height = s.height / 8;
  l.width = s.width / 8;
  return l;
}

void validate_options(const GenerateOptions& o, Size size) {
  // 8x VAE compression times the 2x2 patch: anything else cannot be patched into whole tokens.
  TD_CHECK(size.width % 16 == 0 && size.height % 16 == 0, "--size",
           "width and height must be multiples of 16, got ", size.width, "x", size.height);
  TD_CHECK(size.width >= 16 && size.height >= 16 && size.width <= 4096 && size.height <= 4096, "--size",
           "each side must be in 16..4096, got ", size.width, "x", size.height);
  TD_CHECK(o.frames >= 1 && (o.frames - 1) % 4 == 0, "--frames",
           "the VAE needs 1 + 4k frames (1, 5, ..., 77, 81), got ", o.frames);
  TD_CHECK(o.frames <= 4 * 1023 + 1, "--frames", "at most 4093 frames (RoPE positions), got ", o.frames);
  if (o.sampler == SamplerKind::RCM) {
    TD_CHECK(o.steps >= 1 && o.steps <= 4, "--steps", "the rCM sampler takes 1 to 4 steps, got ", o.steps,
             " (use --sampler unipc|euler for a teacher checkpoint)");
    TD_CHECK(o.sigma_max > 0 && std::isfinite(o.sigma_max), "--sigma-max", "must be positive, got ", o.sigma_max);
  } else {
    TD_CHECK(o.steps >= 1 && o.steps <= 1000, "--steps", "teacher samplers take 1 to 1000 steps, got ", o.steps);
    TD_CHECK(o.shift > 0 && std::isfinite(o.shift), "--shift", "must be positive, got ", o.shift);
    TD_CHECK(o.guidance >= 0 && std::isfinite(o.guidance), "--guidance", "must be >= 0, got ", o.guidance);
    TD_CHECK(!o.ode, "--ode", "only applies to the rCM sampler");
  }
  TD_CHECK(o.boundary > 0 && o.boundary < 1, "--boundary", "must be in (0, 1), got ", o.boundary);
  TD_CHECK(o.num_samples >= 1 && o.num_samples <= 1000, "--num-samples", "must be in 1..1000, got ", o.num_samples);
  TD_CHECK(o.fps >= 1 && o.fps <= 240, "--fps", "must be in 1..240, got ", o.fps);
  TD_CHECK(o.topk > 0 && o.topk <= 1, "--topk", "must be in (0, 1], got ", o.topk);
  TD_CHECK(!o.prompt.empty(), "--prompt", "an empty prompt (give one with -p)");
}

static void check_readable(const std::string& path, const std::string& flag) {
  TD_CHECK(!path.empty(), flag, "is required (or give --model-dir)");
  std::error_code ec;
  TD_CHECK(fs::exists(path, ec), flag, "no such file: ", path);
  TD_CHECK(fs::is_regular_file(path, ec), flag, "not a regular file: ", path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  TD_CHECK(f != nullptr, flag, "cannot open ", path);
  std::fclose(f);
}

void check_files(const GenerateOptions& o) {
  if (o.mode == Mode::T2V) {
    check_readable(o.dit, "--dit");
  } else {
    check_readable(o.dit_high.empty() ? o.dit : o.dit_high, "--dit-high");
    check_readable(o.dit_low.empty() ? o.dit : o.dit_low, "--dit-low");
    check_readable(o.image, "--image");
  }
  check_readable(o.t5, "--t5");
  check_readable(o.tokenizer, "--tokenizer");
  check_readable(o.vae, "--vae");
  // Like the reference scripts, create the output's directory (default output/...) rather than fail on it.
  fs::path parent = fs::path(o.output).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent, ec)) fs::create_directories(parent, ec);
  // access(W_OK) alone accepts a regular file as "directory"; the write would then fail after all the work.
  // Same for a PNG frame directory, whose mkdir would fail after the run.
  if (!parent.empty())
    TD_CHECK(fs::is_directory(parent, ec), "-o", "cannot write ", o.output, ": ", parent.string(),
             " is not a directory");
  check_video_output(o.output, "-o");
}

namespace {

std::vector<fs::path> list_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
       it != end && !ec; it.increment(ec)) {
    if (it.depth() > 3) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// Picks the best file whose name satisfies `match`, scored by `score` (higher is better). Empty if none.
template <typename M, typename S>
std::string pick(const std::vector<fs::path>& files, M match, S score) {
  std::string best;
  int best_score = -(1 << 30);
  for (auto& p : files) {
    std::string n = p.filename().string();
    if (!match(n)) continue;
    int s = score(n);
    if (s > best_score) {
      best_score = s;
      best = p.string();
    }
  }
  return best;
}

}  // namespace

std::vector<std::string> resolve_model_dir(const std::string& dir, GenerateOptions& o) {
  std::error_code ec;
  TD_CHECK(fs::is_directory(dir, ec), "--model-dir", "not a directory: ", dir);
  std::vector<fs::path> files = list_files(dir);
  std::vector<std::string> found;
  auto is_ckpt = [](const std::string& n) {
    return n.size() > 4 && (n.rfind(".pth") == n.size() - 4 || n.rfind(".pt") == n.size() - 3 ||
                            n.rfind(".safetensors") == n.size() - 12);
  };
  // Quant preference follows --linear; resolution preference follows --resolution.
  auto dit_score = [&](const std::string& n) {
    int s = 0;
    bool quant = contains(n, "-quant") || contains(n, "_quant");
    if (o.linear == LinearMode::W8A8) s += quant ? 10 : -10;
    if (o.linear == LinearMode::BF16) s += quant ? -10 : 10;
    if (contains(n, o.resolution == "720p" ? "720P" : "480P")) s += 5;
    return s;
  };
  auto set = [&](std::string& field, const std::string& flag, const std::string& path) {
    if (field.empty() && !path.empty()) {
      field = path;
      found.push_back(flag + " = " + path);
    }
  };
  if (o.mode == Mode::T2V) {
    set(o.dit, "--dit",
        pick(files, [&](const std::string& n) { return is_ckpt(n) && contains(n, "T2V") && contains(n, "Wan"); },
             dit_score));
  } else {
    auto i2v = [&](const std::string& n) { return is_ckpt(n) && contains(n, "I2V") && contains(n, "Wan"); };
    set(o.dit_high, "--dit-high",
        pick(files, [&](const std::string& n) { return i2v(n) && contains(n, "high"); }, dit_score));
    set(o.dit_low, "--dit-low",
        pick(files, [&](const std::string& n) { return i2v(n) && contains(n, "low"); }, dit_score));
  }
  set(o.t5, "--t5",
      pick(files, [&](const std::string& n) { return is_ckpt(n) && contains(n, "umt5") && !contains(n, "spiece"); },
           [](const std::string& n) { return contains(n, "models_t5_umt5-xxl-enc-bf16") ? 1 : 0; }));
  set(o.tokenizer, "--tokenizer",
      pick(files, [](const std::string& n) { return n == "spiece.model"; }, [](const std::string&) { return 0; }));
  set(o.vae, "--vae",
      pick(files,
           [&](const std::string& n) {
             return is_ckpt(n) && (contains(n, "Wan2.1_VAE") || contains(n, "wan_2.1_vae") || contains(n, "vae"));
           },
           [](const std::string& n) { return contains(n, "Wan2.1_VAE") ? 1 : 0; }));
  return found;
}

}  // namespace pipeline
}  // namespace td
