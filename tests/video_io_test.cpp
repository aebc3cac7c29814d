// Video and image IO: MP4 round trip through libavformat (FFmpeg builds), PNG sequences, PNG/JPEG decoding, Wan's
// bicubic resize against torch, the i2v center crop, and bad input (unwritable paths, corrupt images).
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "test_util.h"

using namespace td;

namespace {

std::string tmpdir() {
  static std::string d = [] {
    char tmpl[] = "/tmp/td_video_io_XXXXXX";
    const char* p = mkdtemp(tmpl);
    return std::string(p ? p : "/tmp");
  }();
  return d;
}

// Smooth moving colour gradients: what a codec should reproduce closely.
Tensor synthetic_frames(int T, int H, int W) {
  Tensor f = Tensor::empty({T, H, W, 3}, DType::U8);
  uint8_t* p = f.ptr<uint8_t>();
  for (int t = 0; t < T; t++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < 3; c++)
          p[((int64_t(t) * H + y) * W + x) * 3 + c] =
              uint8_t(127.5 + 100 * std::sin(0.07 * x + 0.05 * y + 0.2 * t + 2.0 * c));
  return f;
}

double psnr(const Tensor& a, const Tensor& b) {
  double se = 0;
  for (int64_t i = 0; i < a.numel(); i++) {
    double d = double(a.ptr<uint8_t>()[i]) - double(b.ptr<uint8_t>()[i]);
    se += d * d;
  }
  const double mse = se / double(a.numel());
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

void write_jpeg(const std::string& path, const Tensor& rgb, int quality) {
  jpeg_compress_struct c;
  jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_stdio_dest(&c, f);
  c.image_width = JDIMENSION(rgb.size(1));
  c.image_height = JDIMENSION(rgb.size(0));
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = rgb.ptr<uint8_t>() + size_t(c.next_scanline) * c.image_width * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

}  // namespace

TEST(VideoIo, VideoToU8) {
  Tensor v = Tensor::from_f32({3, 1, 1, 2}, {-1.f, 1.f, 0.f, 2.f, -3.f, 0.5f});
  Tensor u = video_to_u8(v);
  ASSERT_EQ(u.shape(), (Shape{1, 1, 2, 3}));
  const uint8_t* p = u.ptr<uint8_t>();
  EXPECT_EQ(p[0], 0);    // pixel 0: r=-1, g=0, b=-3 (clamped)
  EXPECT_EQ(p[1], 128);  // round(127.5)
  EXPECT_EQ(p[2], 0);
  EXPECT_EQ(p[3], 255);  // pixel 1: r=1, g=2 (clamped), b=0.5
  EXPECT_EQ(p[4], 255);
  EXPECT_EQ(p[5], 191);  // round(1.5 * 127.5) = 191
}

TEST(VideoIo, Mp4RoundTrip) {
  if (!ffmpeg_available()) GTEST_SKIP() << "built without FFmpeg";
  const std::string path = tmpdir() + "/rt.mp4";
  Tensor f = synthetic_frames(9, 64, 96);
  write_video(path, f, 16);
  Tensor r = read_video(path);
  ASSERT_EQ(r.shape(), f.shape()) << "encoder " << mp4_encoder_name();
  const double p = psnr(r, f);
  std::printf("[ VideoIo ] %s round trip PSNR %.1f dB\n", mp4_encoder_name().c_str(), p);
  EXPECT_GT(p, 30.0);
  // No temporary left behind.
  EXPECT_NE(access((path + ".tmp-" + std::to_string(getpid())).c_str(), F_OK), 0);
}

TEST(VideoIo, Mp4WithoutFfmpegFailsClearly) {
  if (ffmpeg_available()) {
    EXPECT_THROW(write_mp4(tmpdir() + "/odd.mp4", synthetic_frames(1, 9, 16), 16), Error);  // odd height
    GTEST_SKIP() << "built with FFmpeg (checked the odd-size error instead)";
  }
  try {
    write_video(tmpdir() + "/x.mp4", synthetic_frames(1, 8, 8), 16);
    FAIL() << "expected td::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FFmpeg"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_video_output(tmpdir() + "/x.mp4", "--output"), Error);
}

TEST(VideoIo, PngSequenceRoundTrip) {
  const std::string dir = tmpdir() + "/frames";
  Tensor f = synthetic_frames(3, 16, 24);
  write_video(dir + "/", f, 16);
  for (int t = 0; t < 3; t++) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%05d.png", t);
    Tensor r = read_image(dir + name);
    ASSERT_EQ(r.shape(), (Shape{16, 24, 3}));
    EXPECT_EQ(std::memcmp(r.data(), f.select(0, t).contiguous().data(), r.nbytes()), 0);
  }
}

// The streaming writer the pipeline feeds while the VAE decodes: frames added in uneven batches come out as the same
// files as the one-shot writers (PNG: byte-identical pixels; MP4: the same codec round trip), and errors from the
// background workers surface at finish().
TEST(VideoIo, StreamingWriterMatchesOneShot) {
  Tensor f = synthetic_frames(9, 32, 48);
  const std::string dir = tmpdir() + "/stream_frames";
  {
    std::unique_ptr<VideoWriter> w = VideoWriter::open(dir, 16);
    w->add(f.slice(0, 0, 1));
    w->add(f.slice(0, 1, 5));
    w->add(f.slice(0, 5, 9));
    w->finish();
  }
  for (int t = 0; t < 9; t++) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%05d.png", t);
    Tensor r = read_image(dir + name);
    ASSERT_EQ(r.shape(), (Shape{32, 48, 3}));
    EXPECT_EQ(std::memcmp(r.data(), f.select(0, t).contiguous().data(), r.nbytes()), 0) << "frame " << t;
  }
  if (ffmpeg_available()) {
    const std::string path = tmpdir() + "/stream.mp4";
    std::unique_ptr<VideoWriter> w = VideoWriter::open(path, 16);
    w->add(f.slice(0, 0, 1));
    w->add(f.slice(0, 1, 9));
    w->finish();
    Tensor r = read_video(path);
    ASSERT_EQ(r.shape(), f.shape());
    EXPECT_GT(psnr(r, f), 30.0);
    // A frame of another size fails on the encoder thread and is reported by finish(); no file is left.
    const std::string bad = tmpdir() + "/stream_bad.mp4";
    std::unique_ptr<VideoWriter> wb = VideoWriter::open(bad, 16);
    wb->add(f.slice(0, 0, 2));
    wb->add(synthetic_frames(1, 16, 16));
    EXPECT_THROW(wb->finish(), Error);
    wb.reset();
    EXPECT_NE(access(bad.c_str(), F_OK), 0);
  } else {
    EXPECT_THROW(VideoWriter::open(tmpdir() + "/x.mp4", 16), Error);
  }
  std::unique_ptr<VideoWriter> empty = VideoWriter::open(tmpdir() + "/empty_frames", 16);
  EXPECT_THROW(empty->finish(), Error);
}

TEST(VideoIo, UnwritableOutput) {
  EXPECT_THROW(check_video_output("/nonexistent_dir_td/x.mp4", "--output"), Error);
  EXPECT_THROW(check_video_output("/nonexistent_dir_td/frames/", "--output"), Error);
  EXPECT_THROW(write_video("/nonexistent_dir_td/a/b/", synthetic_frames(1, 8, 8), 16), Error);
  if (ffmpeg_available()) EXPECT_THROW(write_video("/nonexistent_dir_td/x.mp4", synthetic_frames(1, 8, 8), 16), Error);
}

TEST(VideoIo, JpegDecode) {
  const std::string path = tmpdir() + "/a.jpg";
  Tensor f = synthetic_frames(1, 24, 40).select(0, 0).contiguous();
  write_jpeg(path, f, 95);
  Tensor r = read_image(path);
  ASSERT_EQ(r.shape(), f.shape());
  EXPECT_GT(psnr(r, f), 30.0);
  int w = 0, h = 0;
  read_image_size(path, &w, &h);
  EXPECT_EQ(w, 40);
  EXPECT_EQ(h, 24);
}

TEST(VideoIo, CorruptImages) {
  const std::string d = tmpdir();
  write_bytes(d + "/garbage.png", "this is not an image");
  EXPECT_THROW(read_image(d + "/garbage.png"), Error);
  write_bytes(d + "/empty.jpg", "");
  EXPECT_THROW(read_image(d + "/empty.jpg"), Error);
  EXPECT_THROW(read_image(d + "/missing.png"), Error);
  // A valid PNG cut in half.
  write_png(d + "/ok.png", synthetic_frames(1, 32, 32).select(0, 0).contiguous());
  std::ifstream in(d + "/ok.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(d + "/cut.png", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_image(d + "/cut.png"), Error);
  // A JPEG header followed by junk.
  write_bytes(d + "/bad.jpg", std::string("\xFF\xD8\xFF\xE0", 4) + std::string(64, 'x'));
  try {
    read_image(d + "/bad.jpg");
    FAIL() << "expected td::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jpg"), std::string::npos) << e.what();
  }
}

TEST(VideoIo, BicubicMatchesTorch) {
  TensorMap m = load_safetensors(std::string(TD_SOURCE_DIR) + "/tests/fixtures/vae/resize.safetensors");
  Tensor img = m.get("img").to_f32_host().contiguous();
  EXPECT_LT(test::max_abs_diff(resize_bicubic(img, 16, 24), m.get("up")), 1e-5);
  EXPECT_LT(test::max_abs_diff(resize_bicubic(img, 7, 9), m.get("down")), 1e-5);
}

TEST(VideoIo, I2vCenterCrop) {
  // A 40x20 image whose left and right quarters are black and middle white; cropping to 16x16 keeps the middle.
  Tensor f = Tensor::zeros({20, 40, 3}, DType::U8);
  for (int y = 0; y < 20; y++)
    for (int x = 10; x < 30; x++)
      for (int c = 0; c < 3; c++) f.ptr<uint8_t>()[(y * 40 + x) * 3 + c] = 255;
  const std::string path = tmpdir() + "/crop.png";
  write_png(path, f);
  Tensor t = load_image_for_i2v(path, 16, 16);  // scale 0.8 -> 32x16, crop 8 columns each side -> all white
  ASSERT_EQ(t.shape(), (Shape{3, 16, 16}));
  // Interior columns are exactly white; the outermost ones feel the black borders through the bicubic taps.
  for (int64_t i = 0; i < t.numel(); i++) {
    const int64_t x = i % 16;
    if (x >= 2 && x < 14) ASSERT_NEAR(t.ptr<float>()[i], 1.f, 1e-4f) << i;
    else ASSERT_GT(t.ptr<float>()[i], 0.5f) << i;
  }
  Tensor s = load_image_for_i2v(path, 16, 16, ImageFit::Stretch);  // keeps the black sides
  EXPECT_LT(s.ptr<float>()[0], -0.9f);
  EXPECT_THROW(load_image_for_i2v(tmpdir() + "/missing.png", 16, 16), Error);
}
