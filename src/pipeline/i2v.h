// Image-to-video with the Wan2.2 A14B pair of experts: the image is VAE-encoded with zero frames after it, the
// 4-channel first-frame mask and the 16-channel image latent form the 20-channel conditioning y, and the high-noise
// expert denoises while t >= boundary, then the low-noise one. Only one expert exists at a time.
#pragma once

#include "pipeline/generate.h"

namespace td {
namespace pipeline {

// Frame size for i2v: --size, else the table size, or with --adaptive-resolution the table's area at the image's
// aspect ratio.
Size i2v_size(const GenerateOptions& o, Size image);

// The conditioning y [20, F, h, w]: channels 0-3 are 1 on latent frame 0 and 0 elsewhere, channels 4-19 the image
// latent (from encoding [image, zeros x (frames - 1)]).
Tensor i2v_condition(const Tensor& image_latent);

GenerateReport run_i2v(const GenerateOptions& o, StageFactory& f);

}  // namespace pipeline
}  // namespace td
