#include "pipeline/progress.h"

#include <unistd.h>

#include <cstdio>

namespace td {
namespace pipeline {

Progress::Progress(bool enabled) : enabled_(enabled && ::isatty(2) == 1) {}

Progress::~Progress() { finish(); }

void Progress::stage(const std::string& name, int total, const std::string& unit) {
  finish();
  name_ = name;
  unit_ = unit;
  total_ = total;
  stage_start_ = std::chrono::steady_clock::now();
  draw(0);
}

void Progress::update(int done) { draw(done); }

void Progress::draw(int done) {
  if (!enabled_) return;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - stage_start_).count();
  char eta[48] = "";
  // The first unit includes warm-up (graph capture, first-touch), so no ETA until one is done.
  if (total_ > 0 && done > 0 && done < total_) std::snprintf(eta, sizeof eta, "  ETA %.1fs", el / done * (total_ - done));
  if (total_ > 0)
    std::fprintf(stderr, "\r\033[K[%s] %s %d/%d  %.1fs%s", name_.c_str(), unit_.c_str(), done, total_, el, eta);
  else
    std::fprintf(stderr, "\r\033[K[%s] %.1fs", name_.c_str(), el);
  std::fflush(stderr);
  line_open_ = true;
}

void Progress::finish() {
  if (enabled_ && line_open_) {
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  line_open_ = false;
}

}  // namespace pipeline
}  // namespace td
