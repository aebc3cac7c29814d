// MP4 writing and video reading through FFmpeg's libraries (compiled only when the build has FFmpeg; video.cpp holds
// the fallbacks). H.264 in yuv420p (libx264 at CRF 18 when present, the most widely playable choice), BT.601
// limited range as swscale converts by default, so a player's default matrix shows the right colours.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

namespace td {
namespace {

std::string averr(int e) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(e, buf, sizeof buf);
  return buf;
}

// libx264 speed preset (TD_X264_PRESET overrides). At CRF 18 "veryfast" keeps the quality target and encodes 81
// 832x480 frames several times faster than "medium" (files ~20-30% larger); the encoder sits on the critical path
// of a prompt-to-MP4 run that otherwise takes a few seconds.
const char* x264_preset() {
  const char* e = std::getenv("TD_X264_PRESET");
  return e && *e ? e : "veryfast";
}

// libx264 tuning (TD_X264_TUNE overrides; "none" for x264's default). "zerolatency" drops B-frames, the lookahead
// and frame threading (slice threads instead), so each frame's packet comes out as soon as it is encoded: with the
// default settings x264 held ~20 frames in flight, and flushing them after the VAE's last chunk left 79 ms of
// encoding on the critical path of a 1.5 s prompt-to-MP4 run (H100 machine, 16 cores; docs/perf.md). CRF still sets
// the quality; the file is larger without B-frames.
const char* x264_tune() {
  const char* e = std::getenv("TD_X264_TUNE");
  if (e && *e) return std::string(e) == "none" ? nullptr : e;
  return "zerolatency";
}

const AVCodec* pick_encoder(bool* is_h264) {
  *is_h264 = true;
  if (const AVCodec* c = avcodec_find_encoder_by_name("libx264")) return c;
  if (const AVCodec* c = avcodec_find_encoder(AV_CODEC_ID_H264)) return c;
  *is_h264 = false;
  return avcodec_find_encoder(AV_CODEC_ID_MPEG4);
}

// Owns everything one write or read opens, so every error path cleans up (and drops the temporary file).
struct Av {
  AVFormatContext* oc = nullptr;  // output
  AVFormatContext* ic = nullptr;  // input
  AVCodecContext* cc = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* rgb = nullptr;
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  std::string tmp;
  bool committed = false;
  ~Av() {
    if (oc) {
      if (oc->pb) avio_closep(&oc->pb);
      avformat_free_context(oc);
    }
    if (ic) avformat_close_input(&ic);
    avcodec_free_context(&cc);
    av_frame_free(&frame);
    av_frame_free(&rgb);
    av_packet_free(&pkt);
    sws_freeContext(sws);
    if (!tmp.empty() && !committed) std::remove(tmp.c_str());
  }
};

void drain(Av& a, AVStream* st, const std::string& path) {
  for (;;) {
    int r = avcodec_receive_packet(a.cc, a.pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    TD_CHECK(r >= 0, path, "video encoding failed: ", averr(r));
    // Without a duration the MP4 muxer's edit list ends at the last frame's start and readers discard that frame.
    if (a.pkt->duration <= 0) a.pkt->duration = 1;
    av_packet_rescale_ts(a.pkt, a.cc->time_base, st->time_base);
    a.pkt->stream_index = st->index;
    r = av_interleaved_write_frame(a.oc, a.pkt);
    TD_CHECK(r >= 0, path, "writing video failed: ", averr(r));
  }
}

}  // namespace

std::string mp4_encoder_name() {
  bool h264;
  const AVCodec* c = pick_encoder(&h264);
  return c ? c->name : "";
}

namespace {
// The H.264 encoder of one file, fed a frame at a time (the pipeline streams decoded frames into it). Opened at the
// first frame, which fixes the size; the container is renamed into place by finish().
class Mp4Sink : public FrameSink {
 public:
  Mp4Sink(std::string path, int fps) : path_(std::move(path)), fps_(fps) {
    TD_CHECK(fps > 0 && fps <= 240, "--fps", "must be in 1..240, got ", fps);
  }
  void add(const Tensor& frame_in) override {
    TD_CHECK(frame_in.dim() == 3 && frame_in.size(2) == 3 && frame_in.dtype() == DType::U8, path_,
             "expected a u8 frame [H, W, 3], got ", frame_in.describe());
    Tensor frame = frame_in.to(Device::CPU).contiguous();
    if (!st_) open(int(frame.size(0)), int(frame.size(1)));
    TD_CHECK(frame.size(0) == H_ && frame.size(1) == W_, path_, "frame ", t_, " is ", frame.size(1), "x",
             frame.size(0), ", the video is ", W_, "x", H_);
    int r = av_frame_make_writable(a_.frame);
    TD_CHECK(r >= 0, path_, "frame buffer: ", averr(r));
    const uint8_t* src[1] = {frame.ptr<uint8_t>()};
    const int stride[1] = {3 * W_};
    sws_scale(a_.sws, src, stride, 0, H_, a_.frame->data, a_.frame->linesize);
    a_.frame->pts = t_++;
    r = avcodec_send_frame(a_.cc, a_.frame);
    TD_CHECK(r >= 0, path_, "video encoding failed: ", averr(r));
    drain(a_, st_, path_);
  }
  void finish() override {
    TD_CHECK(st_, path_, "no frames to write");
    int r = avcodec_send_frame(a_.cc, nullptr);
    TD_CHECK(r >= 0, path_, "video encoding failed: ", averr(r));
    drain(a_, st_, path_);
    r = av_write_trailer(a_.oc);
    TD_CHECK(r >= 0, path_, "cannot finish the container: ", averr(r));
    avio_closep(&a_.oc->pb);
    TD_CHECK(std::rename(a_.tmp.c_str(), path_.c_str()) == 0, path_, "cannot rename ", a_.tmp, " into place");
    a_.committed = true;
  }

 private:
  void open(int H, int W) {
    TD_CHECK(H % 2 == 0 && W % 2 == 0, path_, "yuv420p video needs even width and height, got ", W, "x", H);
    av_log_set_level(AV_LOG_ERROR);  // libx264 prints its whole configuration at info level
    H_ = H, W_ = W;
    const std::string& path = path_;
    const int fps = fps_;
    bool h264 = true;
    const AVCodec* codec = pick_encoder(&h264);
    TD_CHECK(codec, path, "this FFmpeg has neither an H.264 nor an MPEG-4 encoder");
    if (!h264) log_warn(path, ": no H.264 encoder in this FFmpeg; writing MPEG-4 part 2 instead");

    const AVOutputFormat* ofmt = av_guess_format(nullptr, path.c_str(), nullptr);
    TD_CHECK(ofmt, path, "FFmpeg does not know this container (use .mp4)");
    a_.tmp = cat(path, ".tmp-", getpid());
    int r = avformat_alloc_output_context2(&a_.oc, ofmt, nullptr, a_.tmp.c_str());
    TD_CHECK(r >= 0 && a_.oc, path, "cannot create the container: ", averr(r));
    a_.cc = avcodec_alloc_context3(codec);
    TD_CHECK(a_.cc, path, "out of memory");
    a_.cc->width = W;
    a_.cc->height = H;
    a_.cc->time_base = AVRational{1, fps};
    a_.cc->framerate = AVRational{fps, 1};
    a_.cc->pix_fmt = AV_PIX_FMT_YUV420P;
    a_.cc->gop_size = 2 * fps;
    a_.cc->color_range = AVCOL_RANGE_MPEG;
    a_.cc->colorspace = AVCOL_SPC_SMPTE170M;
    const bool x264 = std::string(codec->name) == "libx264";
    if (x264) {
      // Any string sets; libx264 checks the preset and tune when the encoder opens (below).
      av_opt_set(a_.cc->priv_data, "crf", "18", 0);
      av_opt_set(a_.cc->priv_data, "preset", x264_preset(), 0);
      if (const char* tune = x264_tune()) av_opt_set(a_.cc->priv_data, "tune", tune, 0);
    } else {
      // Encoders without CRF: a fixed high quality (qscale 2 for MPEG-4; a generous bit rate for others).
      a_.cc->flags |= AV_CODEC_FLAG_QSCALE;
      a_.cc->global_quality = FF_QP2LAMBDA * 2;
      a_.cc->bit_rate = int64_t(W) * H * fps * 2;
    }
    if (a_.oc->oformat->flags & AVFMT_GLOBALHEADER) a_.cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    r = avcodec_open2(a_.cc, codec, nullptr);
    TD_CHECK(r >= 0, path, "cannot open encoder ", codec->name, ": ", averr(r),
             x264 ? cat(" (libx264 preset '", x264_preset(), "', tune '", x264_tune() ? x264_tune() : "none",
                        "': TD_X264_PRESET / TD_X264_TUNE)")
                  : std::string());
    st_ = avformat_new_stream(a_.oc, nullptr);
    TD_CHECK(st_, path, "cannot add a video stream");
    st_->time_base = a_.cc->time_base;
    r = avcodec_parameters_from_context(st_->codecpar, a_.cc);
    TD_CHECK(r >= 0, path, "codec parameters: ", averr(r));
    r = avio_open(&a_.oc->pb, a_.tmp.c_str(), AVIO_FLAG_WRITE);
    TD_CHECK(r >= 0, path, "cannot open ", a_.tmp, " for writing: ", averr(r));
    r = avformat_write_header(a_.oc, nullptr);
    TD_CHECK(r >= 0, path, "cannot write the container header: ", averr(r));

    a_.frame = av_frame_alloc();
    a_.pkt = av_packet_alloc();
    TD_CHECK(a_.frame && a_.pkt, path, "out of memory");
    a_.frame->format = AV_PIX_FMT_YUV420P;
    a_.frame->width = W;
    a_.frame->height = H;
    r = av_frame_get_buffer(a_.frame, 0);
    TD_CHECK(r >= 0, path, "frame buffer: ", averr(r));
    a_.sws = sws_getContext(W, H, AV_PIX_FMT_RGB24, W, H, AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr,
                           nullptr, nullptr);
    TD_CHECK(a_.sws, path, "cannot create the RGB -> YUV converter");
  }

  std::string path_;
  int fps_;
  Av a_;
  AVStream* st_ = nullptr;
  int H_ = 0, W_ = 0;
  int64_t t_ = 0;
};
}  // namespace

std::unique_ptr<FrameSink> open_mp4_sink(const std::string& path, int fps) {
  return std::unique_ptr<FrameSink>(new Mp4Sink(path, fps));
}

void write_mp4(const std::string& path, const Tensor& frames_in, int fps) {
  TD_CHECK(frames_in.dim() == 4 && frames_in.size(3) == 3 && frames_in.dtype() == DType::U8, path,
           "expected u8 frames [T, H, W, 3], got ", frames_in.describe());
  Tensor frames = frames_in.to(Device::CPU).contiguous();
  TD_CHECK(frames.size(0) > 0, path, "no frames to write");
  std::unique_ptr<FrameSink> sink = open_mp4_sink(path, fps);
  for (int64_t t = 0; t < frames.size(0); t++) sink->add(frames.select(0, t));
  sink->finish();
}

Tensor read_video(const std::string& path) {
  Av a;
  int r = avformat_open_input(&a.ic, path.c_str(), nullptr, nullptr);
  TD_CHECK(r >= 0, path, "cannot open video: ", averr(r));
  r = avformat_find_stream_info(a.ic, nullptr);
  TD_CHECK(r >= 0, path, "cannot read stream info: ", averr(r));
  const AVCodec* dec = nullptr;
  const int si = av_find_best_stream(a.ic, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
  TD_CHECK(si >= 0 && dec, path, "no decodable video stream");
  a.cc = avcodec_alloc_context3(dec);
  TD_CHECK(a.cc, path, "out of memory");
  avcodec_parameters_to_context(a.cc, a.ic->streams[si]->codecpar);
  r = avcodec_open2(a.cc, dec, nullptr);
  TD_CHECK(r >= 0, path, "cannot open decoder: ", averr(r));
  a.frame = av_frame_alloc();
  a.pkt = av_packet_alloc();
  TD_CHECK(a.frame && a.pkt, path, "out of memory");
  std::vector<uint8_t> data;
  int W = 0, H = 0, T = 0;
  auto receive = [&]() {
    for (;;) {
      int rr = avcodec_receive_frame(a.cc, a.frame);
      if (rr == AVERROR(EAGAIN) || rr == AVERROR_EOF) return;
      TD_CHECK(rr >= 0, path, "video decoding failed: ", averr(rr));
      if (T == 0) {
        W = a.frame->width;
        H = a.frame->height;
        a.sws = sws_getContext(W, H, AVPixelFormat(a.frame->format), W, H, AV_PIX_FMT_RGB24,
                               SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
        TD_CHECK(a.sws, path, "cannot create the YUV -> RGB converter");
      }
      TD_CHECK(a.frame->width == W && a.frame->height == H, path, "frame size changes mid-stream");
      data.resize(size_t(T + 1) * H * W * 3);
      uint8_t* dst[1] = {data.data() + size_t(T) * H * W * 3};
      const int stride[1] = {3 * W};
      sws_scale(a.sws, a.frame->data, a.frame->linesize, 0, H, dst, stride);
      T++;
    }
  };
  while ((r = av_read_frame(a.ic, a.pkt)) >= 0) {
    if (a.pkt->stream_index == si) {
      int s = avcodec_send_packet(a.cc, a.pkt);
      TD_CHECK(s >= 0 || s == AVERROR(EAGAIN), path, "video decoding failed: ", averr(s));
      receive();
    }
    av_packet_unref(a.pkt);
  }
  avcodec_send_packet(a.cc, nullptr);
  receive();
  TD_CHECK(T > 0, path, "no frames decoded");
  Tensor out = Tensor::empty({T, H, W, 3}, DType::U8);
  std::copy(data.begin(), data.end(), out.ptr<uint8_t>());
  return out;
}

}  // namespace td
