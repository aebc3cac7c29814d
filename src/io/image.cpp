#include "io/image.h"

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "io/atomic_file.h"

namespace td {
namespace {

std::vector<unsigned char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TD_CHECK(f.good(), path, "cannot open image (missing file or no permission)");
  std::vector<unsigned char> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TD_CHECK(!d.empty(), path, "image file is empty");
  return d;
}

bool is_png(const std::vector<unsigned char>& d) { return d.size() >= 8 && png_sig_cmp(d.data(), 0, 8) == 0; }
bool is_jpeg(const std::vector<unsigned char>& d) { return d.size() >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

struct JpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
};
void jpeg_fail(j_common_ptr c) {
  JpegErr* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jb, 1);
}

// Decodes with libjpeg; `pixels` null reads only the header. Returns false with `err` set on corrupt data.
bool decode_jpeg(const std::vector<unsigned char>& d, int* w, int* h, std::vector<unsigned char>* pixels,
                 std::string* err) {
  jpeg_decompress_struct c;
  JpegErr e;
  c.err = jpeg_std_error(&e.mgr);
  e.mgr.error_exit = jpeg_fail;
  e.mgr.output_message = [](j_common_ptr) {};  // warnings (e.g. premature end) are not fatal; stay quiet
  if (setjmp(e.jb)) {
    *err = e.msg;
    jpeg_destroy_decompress(&c);
    return false;
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, d.data(), (unsigned long)d.size());
  jpeg_read_header(&c, TRUE);
  c.out_color_space = JCS_RGB;
  *w = int(c.image_width);
  *h = int(c.image_height);
  if (pixels) {
    jpeg_start_decompress(&c);
    pixels->resize(size_t(c.output_width) * c.output_height * 3);
    while (c.output_scanline < c.output_height) {
      JSAMPROW row = pixels->data() + size_t(c.output_scanline) * c.output_width * 3;
      jpeg_read_scanlines(&c, &row, 1);
    }
    jpeg_finish_decompress(&c);
  }
  jpeg_destroy_decompress(&c);
  return true;
}

}  // namespace

void read_image_size(const std::string& path, int* width, int* height) {
  std::vector<unsigned char> d = slurp(path);
  if (is_png(d)) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    TD_CHECK(png_image_begin_read_from_memory(&img, d.data(), d.size()), path, "corrupt PNG: ", img.message);
    *width = int(img.width);
    *height = int(img.height);
    png_image_free(&img);
    return;
  }
  TD_CHECK(is_jpeg(d), path, "not a PNG or JPEG image");
  std::string err;
  TD_CHECK(decode_jpeg(d, width, height, nullptr, &err), path, "corrupt JPEG: ", err);
}

Tensor read_image(const std::string& path) {
  std::vector<unsigned char> d = slurp(path);
  if (is_png(d)) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    TD_CHECK(png_image_begin_read_from_memory(&img, d.data(), d.size()), path, "corrupt PNG: ", img.message);
    TD_CHECK(img.width > 0 && img.height > 0 && img.width <= 32768 && img.height <= 32768, path,
             "unsupported PNG size ", img.width, "x", img.height);
    img.format = PNG_FORMAT_RGB;  // libpng composes alpha onto black and expands grey/palette
    Tensor t = Tensor::empty({int64_t(img.height), int64_t(img.width), 3}, DType::U8);
    if (!png_image_finish_read(&img, nullptr, t.data(), 0, nullptr)) {
      std::string m = img.message;
      png_image_free(&img);
      fail(path, "corrupt PNG: " + m);
    }
    return t;
  }
  TD_CHECK(is_jpeg(d), path, "not a PNG or JPEG image");
  int w = 0, h = 0;
  std::vector<unsigned char> px;
  std::string err;
  TD_CHECK(decode_jpeg(d, &w, &h, &px, &err), path, "corrupt JPEG: ", err);
  TD_CHECK(w > 0 && h > 0 && px.size() == size_t(w) * h * 3, path, "corrupt JPEG: bad dimensions");
  Tensor t = Tensor::empty({h, w, 3}, DType::U8);
  std::memcpy(t.data(), px.data(), px.size());
  return t;
}

namespace {
void png_fail(png_structp p, png_const_charp msg) {
  *static_cast<std::string*>(png_get_error_ptr(p)) = msg;
  std::longjmp(png_jmpbuf(p), 1);
}

// RGB8 rows to a PNG stream with fast settings: zlib level 1 with the run-length strategy over the SUB filter. Frame
// sequences are an intermediate format; libpng's FAST flag (level 1, default strategy) took ~25 ms for a 480p frame
// on this machine against ~11 ms here, at a slightly smaller file (845 vs 883 KiB for a synthetic frame), and the
// PNG writers run while the VAE decodes, so the last frames' encode is the tail of the pipeline.
// No C++ objects live between setjmp and longjmp (libpng reports errors through png_fail).
bool encode_png(std::FILE* out, const uint8_t* rgb, int w, int h, std::string* err) {
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, png_fail, nullptr);
  if (!p) {
    *err = "out of memory";
    return false;
  }
  png_infop info = png_create_info_struct(p);
  if (!info || setjmp(png_jmpbuf(p))) {
    if (err->empty()) *err = "out of memory";
    png_destroy_write_struct(&p, info ? &info : nullptr);
    return false;
  }
  png_init_io(p, out);
  png_set_IHDR(p, info, png_uint_32(w), png_uint_32(h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(p, 1);
  png_set_compression_strategy(p, Z_RLE);
  png_set_filter(p, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
  png_write_info(p, info);
  for (int y = 0; y < h; y++) png_write_row(p, rgb + size_t(y) * size_t(w) * 3);
  png_write_end(p, info);
  png_destroy_write_struct(&p, &info);
  return true;
}
}  // namespace

void write_png(const std::string& path, const Tensor& rgb) {
  TD_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.dtype() == DType::U8, path, "write_png expects u8 [H, W, 3], got ",
           rgb.describe());
  Tensor c = rgb.to(Device::CPU).contiguous();
  AtomicFile f(path);
  std::string err;
  TD_CHECK(encode_png(f.file(), static_cast<const uint8_t*>(c.data()), int(c.size(1)), int(c.size(0)), &err), path,
           "PNG write failed: ", err);
  f.commit();
}

namespace {
// PyTorch's upsample_bicubic2d (align_corners=False): source coordinate (i + 0.5) * in/out - 0.5, taps clamped.
inline void cubic_weights(float t, float w[4]) {
  const float A = -0.75f;
  auto near = [A](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };          // |x| <= 1
  auto far = [A](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };     // 1 < |x| < 2
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}
}  // namespace

Tensor resize_bicubic(const Tensor& img_in, int out_h, int out_w) {
  TD_CHECK(img_in.dim() == 3 && img_in.dtype() == DType::F32, "resize_bicubic", "expects f32 [C, H, W], got ",
           img_in.describe());
  TD_CHECK(out_h > 0 && out_w > 0, "resize_bicubic", "bad target size ", out_w, "x", out_h);
  Tensor img = img_in.contiguous();
  const int64_t C = img.size(0), H = img.size(1), W = img.size(2);
  Tensor out = Tensor::empty({C, out_h, out_w}, DType::F32);
  const float sh = float(H) / out_h, sw = float(W) / out_w;
  std::vector<int> xi(size_t(out_w) * 4);
  std::vector<float> xw(size_t(out_w) * 4);
  for (int j = 0; j < out_w; j++) {
    const float s = (j + 0.5f) * sw - 0.5f;
    const int x0 = int(std::floor(s));
    cubic_weights(s - x0, &xw[size_t(j) * 4]);
    for (int k = 0; k < 4; k++) xi[size_t(j) * 4 + k] = std::min<int>(int(W) - 1, std::max(0, x0 - 1 + k));
  }
  const float* ip = img.ptr<float>();
  float* op = out.ptr<float>();
  parallel_for(C * out_h, [&](int64_t lo, int64_t hi) {
    std::vector<float> row(static_cast<size_t>(W), 0.f);
    for (int64_t r = lo; r < hi; r++) {
      const int64_t c = r / out_h, i = r % out_h;
      const float s = (i + 0.5f) * sh - 0.5f;
      const int y0 = int(std::floor(s));
      float wy[4];
      cubic_weights(s - y0, wy);
      std::fill(row.begin(), row.end(), 0.f);
      for (int k = 0; k < 4; k++) {
        const int y = std::min<int>(int(H) - 1, std::max(0, y0 - 1 + k));
        const float* src = ip + (c * H + y) * W;
        for (int64_t x = 0; x < W; x++) row[size_t(x)] += wy[k] * src[x];
      }
      float* dst = op + (c * out_h + i) * out_w;
      for (int j = 0; j < out_w; j++) {
        float v = 0;
        for (int k = 0; k < 4; k++) v += xw[size_t(j) * 4 + k] * row[size_t(xi[size_t(j) * 4 + k])];
        dst[j] = v;
      }
    }
  }, 4);
  return out;
}

Tensor load_image_for_i2v(const std::string& path, int width, int height, ImageFit fit) {
  TD_CHECK(width > 0 && height > 0, "--width/--height", "bad target size ", width, "x", height);
  Tensor u8 = read_image(path);
  const int64_t H = u8.size(0), W = u8.size(1);
  Tensor f = Tensor::empty({3, H, W}, DType::F32);
  const uint8_t* s = u8.ptr<uint8_t>();
  float* d = f.ptr<float>();
  for (int64_t p = 0; p < H * W; p++)
    for (int c = 0; c < 3; c++) d[c * H * W + p] = s[p * 3 + c] / 127.5f - 1.f;  // ToTensor, sub 0.5, div 0.5
  if (fit == ImageFit::Stretch) return resize_bicubic(f, height, width);
  const double scale = std::max(double(height) / H, double(width) / W);
  const int rh = std::max(height, int(std::lround(H * scale))), rw = std::max(width, int(std::lround(W * scale)));
  Tensor r = resize_bicubic(f, rh, rw);
  // torchvision's CenterCrop offset: round((in - out) / 2) with Python's round-half-to-even.
  auto offset = [](int excess) { const int q = excess / 2; return (excess % 2 == 1 && q % 2 == 1) ? q + 1 : q; };
  const int top = offset(rh - height), left = offset(rw - width);
  return r.slice(1, top, top + height).slice(2, left, left + width).contiguous();
}

}  // namespace td
