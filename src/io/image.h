// Still images for image-to-video: PNG (libpng) and JPEG (libjpeg) in, PNG out, and Wan's preprocessing.
#pragma once

#include <string>

#include "core/tensor.h"

namespace td {

// Decodes a PNG or JPEG (chosen by content) to u8 [H, W, 3] RGB (alpha dropped, grey expanded). td::Error naming the
// file if it is missing, truncated or corrupt.
Tensor read_image(const std::string& path);
// Size without decoding the pixels (PNG/JPEG headers).
void read_image_size(const std::string& path, int* width, int* height);
// Writes u8 [H, W, 3] as PNG, atomically (temporary + rename).
void write_png(const std::string& path, const Tensor& rgb);

// Bicubic resize of f32 [C, H, W] exactly as torch.nn.functional.interpolate(mode='bicubic', align_corners=False,
// antialias=False), which Wan's image2video uses: a = -0.75, border taps clamped, no clamping of the result.
Tensor resize_bicubic(const Tensor& img, int out_h, int out_w);

enum class ImageFit { CoverCrop, Stretch };
// Wan's i2v input: RGB -> [-1, 1] (x / 127.5 - 1), then to `width` x `height`: CoverCrop (default) scales the image
// (bicubic) so it covers the target with its aspect ratio kept and center-crops the excess; Stretch resizes straight
// to the target like Wan2.1's image2video (whose target already has the image's aspect ratio, up to rounding).
// Returns f32 [3, height, width].
Tensor load_image_for_i2v(const std::string& path, int width, int height, ImageFit fit = ImageFit::CoverCrop);

}  // namespace td
