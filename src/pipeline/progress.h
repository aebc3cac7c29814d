// Progress on stderr: "[diffusion] step 2/4  1.3s elapsed  ETA 1.2s". Redraws one line with \r when stderr is a
// terminal; prints nothing otherwise (logs and CI stay clean). Disabled by --quiet / --json / --no-progress too.
#pragma once

#include <chrono>
#include <string>

namespace td {
namespace pipeline {

class Progress {
 public:
  explicit Progress(bool enabled);  // enabled && isatty(stderr)
  ~Progress();
  // Starts a stage with `total` units (0 = unknown: no ETA).
  void stage(const std::string& name, int total, const std::string& unit);
  void update(int done);  // units done in the current stage
  void finish();          // ends the line of the current stage
  bool active() const { return enabled_; }

 private:
  void draw(int done);
  bool enabled_;
  std::string name_, unit_;
  int total_ = 0;
  std::chrono::steady_clock::time_point stage_start_;
  bool line_open_ = false;
};

}  // namespace pipeline
}  // namespace td
