#include "io/video.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/image.h"

namespace td {

namespace {
// A frame directory's path without trailing slashes, created if missing.
std::string make_frame_dir(const std::string& path) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, cat("cannot create directory: ", std::strerror(errno)));
  return dir;
}
// Frame t of a PNG sequence in `dir`.
std::string png_frame_path(const std::string& dir, int64_t t) {
  char name[32];
  std::snprintf(name, sizeof name, "/frame_%05lld.png", static_cast<long long>(t));
  return dir + name;
}
}  // namespace

Tensor video_to_u8(const Tensor& video) {
  TD_CHECK(video.dim() == 4 && video.size(0) == 3, "video", "expected f32 [3, T, H, W], got ", video.describe());
  Tensor v = video.to_f32_host().contiguous();
  const int64_t T = v.size(1), H = v.size(2), W = v.size(3);
  Tensor out = Tensor::empty({T, H, W, 3}, DType::U8);
  const float* s = v.ptr<float>();
  uint8_t* d = out.ptr<uint8_t>();
  parallel_for(T * H, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t t = r / H, h = r % H;
      for (int64_t w = 0; w < W; w++)
        for (int c = 0; c < 3; c++) {
          float x = s[((c * T + t) * H + h) * W + w];
          x = std::round((std::min(1.f, std::max(-1.f, x)) + 1.f) * 127.5f);
          d[(r * W + w) * 3 + c] = uint8_t(x);
        }
    }
  }, 16);
  return out;
}

bool video_is_container_path(const std::string& p) {
  for (const char* e : {".mp4", ".mkv", ".mov", ".MP4", ".MKV", ".MOV"}) {
    const size_t n = std::strlen(e);
    if (p.size() > n && p.compare(p.size() - n, n, e) == 0) return true;
  }
  return false;
}

bool ffmpeg_available() {
#ifdef TD_WITH_FFMPEG
  return true;
#else
  return false;
#endif
}

void check_video_output(const std::string& path, const std::string& flag) {
  if (video_is_container_path(path)) {
    TD_CHECK(ffmpeg_available(), flag, path,
             ": MP4 output needs FFmpeg (libavcodec/libavformat/libswscale), which this turbodiff was built "
             "without; write PNG frames instead (--output DIR/) or rebuild with -DTD_FFMPEG=ON");
    check_output_path(path, flag);
    return;
  }
  // A frame directory: it exists and is writable, or its parent is.
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    TD_CHECK(S_ISDIR(st.st_mode), flag, path, " exists and is not a directory");
    check_output_path(png_frame_path(path, 0), flag);
  } else {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    check_output_path(p, flag);
  }
}

void write_png_sequence(const std::string& dir_in, const Tensor& frames) {
  TD_CHECK(frames.dim() == 4 && frames.size(3) == 3 && frames.dtype() == DType::U8, dir_in,
           "expected u8 frames [T, H, W, 3], got ", frames.describe());
  const std::string dir = make_frame_dir(dir_in);
  // zlib compression dominates; frames are independent files, so spread them over cores.
  parallel_for(frames.size(0), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) write_png(png_frame_path(dir, t), frames.select(0, t).contiguous());
  });
}

void write_video(const std::string& path, const Tensor& frames, int fps) {
  TD_CHECK(fps > 0, "--fps", "must be positive, got ", fps);
  if (video_is_container_path(path)) return write_mp4(path, frames, fps);
  write_png_sequence(path, frames);
}

namespace {

// Frames from add() go into a queue that `workers` threads drain: each frame is handed to `consume(frame, index)`.
// With one worker the frames are consumed in order (an encoder); PNG files are independent, so several workers write
// them at once. The first exception stops the work and is rethrown by finish().
class AsyncVideoWriter : public VideoWriter {
 public:
  AsyncVideoWriter(std::function<void(const Tensor&, int64_t)> consume, std::function<void()> complete, int workers)
      : consume_(std::move(consume)), complete_(std::move(complete)) {
    for (int i = 0; i < workers; i++) threads_.emplace_back([this] { run(); });
  }
  ~AsyncVideoWriter() override { stop(); }
  void add(const Tensor& frames_in) override {
    TD_CHECK(frames_in.dim() == 4 && frames_in.size(3) == 3 && frames_in.dtype() == DType::U8, "video writer",
             "expected u8 frames [n, H, W, 3], got ", frames_in.describe());
    Tensor frames = frames_in.to(Device::CPU).contiguous();
    std::lock_guard<std::mutex> lk(mu_);
    for (int64_t i = 0; i < frames.size(0); i++) queue_.emplace_back(frames.select(0, i), next_++);
    cv_.notify_all();
  }
  void finish() override {
    stop();
    if (error_) std::rethrow_exception(error_);
    TD_CHECK(next_ > 0, "video writer", "no frames to write");
    complete_();
  }

 private:
  void run() {
    for (;;) {
      std::pair<Tensor, int64_t> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return closed_ || !queue_.empty(); });
        if (queue_.empty() || error_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        consume_(job.first, job.second);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        queue_.clear();
      }
    }
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

  std::function<void(const Tensor&, int64_t)> consume_;
  std::function<void()> complete_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Tensor, int64_t>> queue_;
  std::vector<std::thread> threads_;
  std::exception_ptr error_;
  int64_t next_ = 0;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<VideoWriter> VideoWriter::open(const std::string& path, int fps) {
  TD_CHECK(fps > 0, "--fps", "must be positive, got ", fps);
  if (video_is_container_path(path)) {
    std::shared_ptr<FrameSink> sink(open_mp4_sink(path, fps).release());
    return std::unique_ptr<VideoWriter>(new AsyncVideoWriter([sink](const Tensor& f, int64_t) { sink->add(f); },
                                                             [sink] { sink->finish(); }, 1));
  }
  const std::string dir = make_frame_dir(path);
  // PNG compression dominates (~55 ms a 480p frame on the H100 host with libpng's FAST flag; see encode_png in
  // image.cpp for the faster settings now used): all cores but the two the VAE's host side uses, so the files keep
  // up with the decode (4 writers left 0.46 s of writing after it).
  const int workers = std::max(1, std::min(16, num_threads() - 2));
  return std::unique_ptr<VideoWriter>(new AsyncVideoWriter(
      [dir](const Tensor& f, int64_t t) { write_png(png_frame_path(dir, t), f); }, [] {}, workers));
}

#ifndef TD_WITH_FFMPEG
void write_mp4(const std::string& path, const Tensor&, int) {
  fail(path, "MP4 output needs FFmpeg, which this turbodiff was built without; write a PNG frame directory instead "
             "or rebuild with -DTD_FFMPEG=ON");
}
std::unique_ptr<FrameSink> open_mp4_sink(const std::string& path, int) {
  fail(path, "MP4 output needs FFmpeg, which this turbodiff was built without; write a PNG frame directory instead "
             "or rebuild with -DTD_FFMPEG=ON");
}
Tensor read_video(const std::string& path) { fail(path, "reading video files needs FFmpeg (not in this build)"); }
std::string mp4_encoder_name() { return ""; }
#endif

}  // namespace td
