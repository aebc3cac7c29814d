// Wan2.1 VAE on CUDA (bf16, cuDNN convs) against the fp32 CPU path: the tiny fixture model and the real channel
// counts (random weights) at a small spatial size; decode and encode, per-frame and whole-sequence chunking.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "io/safetensors.h"
#include "model/vae/wan_vae.h"
#include "test_util.h"

using namespace td;

namespace {
const std::string kDir = std::string(TD_SOURCE_DIR) + "/tests/fixtures/vae/";

void compare(const Tensor& gpu, const Tensor& cpu, double tol, const char* what) {
  const double e = test::nmse(gpu, cpu);
  std::printf("[ VaeCuda ] %s: NMSE %.3e, max abs %.3e\n", what, e, test::max_abs_diff(gpu, cpu));
  EXPECT_LT(e, tol) << what;
}
}  // namespace

TEST(VaeCuda, TinyDecodeEncodeMatchCpu) {
  TD_SKIP_WITHOUT_CUDA();
  TensorMap w = load_safetensors(kDir + "tiny_vae.safetensors");
  TensorMap io = load_safetensors(kDir + "tiny_io.safetensors");
  WanVae cpu(w, Device::CPU), gpu(w, Device::CUDA);
  Tensor z = io.get("z").to_f32_host().contiguous();
  Tensor vc = cpu.decode(z), vg = gpu.decode(z);
  compare(vg, vc, 3e-3, "tiny decode");
  compare(vg, io.get("video").to_f32_host(), 3e-3, "tiny decode vs PyTorch");
  VaeDecodeOptions all;
  all.chunk = 0;
  compare(gpu.decode(z, all), vg, 1e-3, "tiny whole-sequence vs per-frame decode");
  Tensor v = io.get("video_in").to_f32_host().contiguous();
  compare(gpu.encode(v), cpu.encode(v), 3e-3, "tiny encode");
}

TEST(VaeCuda, RealChannelsSmallSizeMatchCpu) {
  TD_SKIP_WITHOUT_CUDA();
  VaeConfig cfg;  // dim 96: the real Wan2.1 channel counts
  TensorMap w = WanVae::random_weights(cfg, 5);
  WanVae cpu(w, Device::CPU, cfg), gpu(w, Device::CUDA, cfg);
  Tensor z = test::randn({16, 3, 4, 6}, 3);
  Tensor vc = cpu.decode(z), vg = gpu.decode(z);
  ASSERT_EQ(vg.shape(), (Shape{3, 9, 32, 48}));
  compare(vg, vc, 5e-3, "dim-96 decode");
  VaeDecodeOptions tiled;
  tiled.tile = 4;
  tiled.tile_overlap = 2;
  Tensor z2 = test::randn({16, 2, 8, 8}, 4);
  compare(gpu.decode(z2, tiled), cpu.decode(z2, tiled), 5e-3, "dim-96 tiled decode");
  Tensor v = test::randn({3, 5, 32, 48}, 9, 0.5f);
  compare(gpu.encode(v), cpu.encode(v), 5e-3, "dim-96 encode");
  std::printf("[ VaeCuda ] peak device memory %.1f MiB\n", device_peak_bytes() / 1048576.0);
}
