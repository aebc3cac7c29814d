// Video output: MP4 (H.264, yuv420p) through FFmpeg's libraries when the build has them, or a directory of PNG
// frames. Every file is written under a temporary name and renamed when complete.
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"

namespace td {

// f32 [3, T, H, W] in [-1, 1] -> u8 [T, H, W, 3] (round((x + 1) / 2 * 255), clamped).
Tensor video_to_u8(const Tensor& video);

// frames u8 [T, H, W, 3]. A path ending in .mp4/.mkv/.mov -> H.264 via FFmpeg (td::Error saying the build lacks
// FFmpeg otherwise); any other path is a directory that receives frame_00000.png, frame_00001.png, ...
void write_video(const std::string& path, const Tensor& frames, int fps = 16);
void write_png_sequence(const std::string& dir, const Tensor& frames);

// Checks before heavy work that `path` can be written in the form requested (directory writable, MP4 supported by
// this build). td::Error naming `flag`.
void check_video_output(const std::string& path, const std::string& flag);

bool video_is_container_path(const std::string& path);  // .mp4 / .mkv / .mov
bool ffmpeg_available();                                // built with FFmpeg

// A video written frame by frame, in order: add() takes one u8 frame [H, W, 3]; finish() completes the file (renamed
// into place). Destroying an unfinished sink discards the output.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void add(const Tensor& frame) = 0;
  virtual void finish() = 0;
};
// FFmpeg builds only (td::Error otherwise): an MP4 sink (the encoder write_mp4 uses).
std::unique_ptr<FrameSink> open_mp4_sink(const std::string& path, int fps);

// What the pipeline writes while the VAE still decodes: add(frames) takes u8 [n, H, W, 3] frames in order and returns
// at once; the encoding (MP4, one worker thread) or the PNG files (a few worker threads) run in the background.
// finish() waits for them and rethrows the first error. Destroying an unfinished writer waits for the workers and
// leaves no MP4 (PNG files already written stay, each complete).
class VideoWriter {
 public:
  static std::unique_ptr<VideoWriter> open(const std::string& path, int fps = 16);
  virtual ~VideoWriter() = default;
  virtual void add(const Tensor& frames) = 0;
  virtual void finish() = 0;
};

// FFmpeg builds only (td::Error otherwise): encode frames to an MP4 (H.264: libx264, else another H.264 encoder,
// else MPEG-4 part 2 with a warning) at `fps`, and decode any video file to u8 [T, H, W, 3].
void write_mp4(const std::string& path, const Tensor& frames, int fps);
Tensor read_video(const std::string& path);
// The encoder write_mp4 would use ("libx264", "h264_nvenc", "mpeg4", ...).
std::string mp4_encoder_name();

}  // namespace td
