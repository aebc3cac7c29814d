#include "io/video.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/image.h"

namespace td {

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
    check_output_path(path + "/frame_00000.png", flag);
  } else {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    check_output_path(p, flag);
  }
}

void write_png_sequence(const std::string& dir_in, const Tensor& frames) {
  TD_CHECK(frames.dim() == 4 && frames.size(3) == 3 && frames.dtype() == DType::U8, dir_in,
           "expected u8 frames [T, H, W, 3], got ", frames.describe());
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, cat("cannot create directory: ", std::strerror(errno)));
  // zlib compression dominates (~60 ms a 480p frame); frames are independent files, so spread them over cores.
  parallel_for(frames.size(0), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) {
      char name[32];
      std::snprintf(name, sizeof name, "/frame_%05lld.png", static_cast<long long>(t));
      write_png(dir + name, frames.select(0, t).contiguous());
    }
  });
}

void write_video(const std::string& path, const Tensor& frames, int fps) {
  TD_CHECK(fps > 0, "--fps", "must be positive, got ", fps);
  if (video_is_container_path(path)) return write_mp4(path, frames, fps);
  write_png_sequence(path, frames);
}

#ifndef TD_WITH_FFMPEG
void write_mp4(const std::string& path, const Tensor&, int) {
  fail(path, "MP4 output needs FFmpeg, which this turbodiff was built without; write a PNG frame directory instead "
             "or rebuild with -DTD_FFMPEG=ON");
}
Tensor read_video(const std::string& path) { fail(path, "reading video files needs FFmpeg (not in this build)"); }
std::string mp4_encoder_name() { return ""; }
#endif

}  // namespace td
