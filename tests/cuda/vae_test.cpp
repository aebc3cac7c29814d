// Wan2.1 VAE on CUDA (bf16, cuDNN convs) against the fp32 CPU path: the tiny fixture model and the real channel
// counts (random weights) at a small spatial size; decode and encode, per-frame and whole-sequence chunking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "cpu/conv3d.h"
#include "cpu/vae_attention.h"
#include "cpu/vae_resample.h"
#include "cpu/vae_rms_norm.h"
#include "cuda/conv3d.h"
#include "cuda/conv2d_wgmma.h"
#include "cuda/vae_ops.h"
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

// The ops one by one (so a failure points at its op): bf16 inputs on both sides, so only accumulation differs.
namespace {
Tensor bf16_round(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }
Tensor to_gpu(const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); }
Conv3dParams pad1() {
  Conv3dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
  return p;
}
// Tests of our sm_90a conv kernel skip elsewhere (the same problems still run through the default route above them).
bool wgmma_convs_here() { return cuda_available() && cuda::conv2d_wgmma_available(); }
}  // namespace

TEST(VaeCuda, Conv3dMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  struct Case { Shape x, w; Conv3dParams p; bool acc; const char* what; };
  Conv3dParams down, tstride, none;
  down.stride_h = down.stride_w = 2;
  down.pad_bottom = down.pad_right = 1;
  tstride.stride_t = 2;
  const Case cases[] = {
      {{4, 6, 10, 32}, {48, 3, 3, 3, 32}, pad1(), false, "3x3x3 pad 1"},
      {{4, 6, 10, 32}, {32, 3, 3, 3, 32}, pad1(), true, "3x3x3 accumulate"},
      {{3, 6, 10, 3}, {16, 3, 3, 3, 3}, pad1(), false, "3 input channels"},
      {{3, 6, 10, 16}, {3, 3, 3, 3, 16}, pad1(), false, "3 output channels"},
      {{2, 8, 12, 16}, {16, 1, 3, 3, 16}, down, false, "downsample (asymmetric pad, stride 2)"},
      {{5, 4, 6, 16}, {16, 3, 1, 1, 16}, tstride, false, "time conv stride 2"},
      {{2, 5, 7, 24}, {96, 1, 2, 2, 24}, pad1(), false, "sub-pixel 2x2"},
      {{2, 9, 70, 32}, {192, 1, 2, 2, 32}, pad1(), false, "sub-pixel 2x2, 192 outputs (wgmma on sm_90a)"},
      {{1, 9, 70, 32}, {96, 1, 2, 2, 32}, pad1(), true, "sub-pixel 2x2 accumulate (wgmma on sm_90a)"},
      {{1, 5, 7, 24}, {40, 1, 1, 1, 24}, none, false, "pointwise"},
      // 1x1 in space: cuBLASLt GEMMs (one per time tap), also accumulating.
      {{3, 6, 10, 48}, {96, 1, 1, 1, 48}, none, true, "pointwise accumulate (GEMM)"},
      {{5, 6, 10, 48}, {96, 3, 1, 1, 48}, none, false, "time conv 3x1x1 (GEMM per tap)"},
      {{4, 6, 10, 48}, {40, 3, 1, 1, 48}, none, true, "time conv 3x1x1 accumulate (GEMM per tap)"},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    Tensor x = bf16_round(test::randn(c.x, seed++)), w = bf16_round(test::randn(c.w, seed++, 0.2f));
    Tensor b = test::randn({c.w[0]}, seed++);
    Shape os = c.p.out_shape(c.x, c.w, "test");
    Tensor yc = c.acc ? bf16_round(test::randn(os, seed++)) : Tensor::empty(os, DType::F32);
    Tensor yg = c.acc ? to_gpu(yc) : Tensor::empty(os, DType::BF16, Device::CUDA);
    cpu::conv3d(x, w, &b, yc, c.p, c.acc);
    Tensor xg = to_gpu(x), wg = to_gpu(w), bg = b.to(Device::CUDA);
    cuda::conv3d(xg, wg, &bg, yg, c.p, c.acc);
    compare(yg, yc, 1e-4, c.what);
  }
}

// The causal conv reading history and input in place (2-D taps) against the CPU conv on the concatenation
// [zeros(2 - cf), hist, x], for every history length and 1-3 new frames, with and without the residual add.
// conv3d_ring on the GPU: the decoder head's shape (3 x 96 ring channels -> 8 outputs) takes our mma.sync kernel,
// 96 / 192 outputs our wgmma kernel on sm_90a (also called directly, so a fallback cannot hide it), others cuDNN; all
// against the CPU conv, with and without accumulation, at sizes that leave partial tiles (head 8 x 32 px, wgmma
// 8 or 4 rows x 64 px) and zero-padded borders.
TEST(VaeCuda, RingConvMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (int64_t O : {8, 16, 96, 192})
    for (bool acc : {false, true}) {
      const int64_t H = 13, W = O >= 96 ? 150 : 45, CP = O == 192 ? 576 : 288;
      Tensor x = bf16_round(test::randn({1, H, W, CP}, seed++)), w = bf16_round(test::randn({O, 1, 3, 3, CP}, seed++, 0.05f));
      Tensor b = test::randn({O}, seed++);
      Tensor yc = acc ? bf16_round(test::randn({1, H, W, O}, seed++)) : Tensor::empty({1, H, W, O}, DType::F32);
      Tensor y0 = acc ? to_gpu(yc) : Tensor::empty({1, H, W, O}, DType::BF16, Device::CUDA);
      Tensor yg = y0.clone();
      cpu::conv3d(x, w, &b, yc, pad1(), acc);
      Tensor xg = to_gpu(x), wg = to_gpu(w), bg = b.to(Device::CUDA);
      cuda::conv3d_ring(xg, wg, &bg, yg, pad1(), acc);
      compare(yg, yc, 1e-4, cat("ring conv O=", O, acc ? " accumulate" : "").c_str());
      if (wgmma_convs_here() && cuda::conv2d_wgmma_fits(CP, O, 3, 3)) {
        for (const char* tile : {"n96r8", "n96r4", "n192r4"}) {
          if (std::string(tile) == "n192r4" && O != 192) continue;
          Tensor yw = y0.clone();
          cuda::conv2d_wgmma(xg, wg, &bg, yw, acc, tile);
          compare(yw, yc, 1e-4, cat("ring conv wgmma ", tile, " O=", O, acc ? " accumulate" : "").c_str());
        }
      }
    }
}

// The wgmma ring conv's persistent loop (more tiles than SMs, so CTAs carry their pipeline phase across tiles) at a
// size the CPU reference would take long for: against cuDNN's conv of the same bf16 data.
TEST(VaeCuda, RingConvWgmmaManyTilesMatchesCudnn) {
  TD_SKIP_WITHOUT_CUDA();
  if (!wgmma_convs_here()) GTEST_SKIP() << "needs an sm_90 GPU and an sm_90a build";
  uint64_t seed = 300;
  for (int64_t O : {96, 192}) {
    const int64_t H = 200, W = 700, CP = 3 * O;
    Tensor xg = to_gpu(test::randn({1, H, W, CP}, seed++));
    Tensor wg = to_gpu(test::randn({O, 1, 3, 3, CP}, seed++, 0.05f));
    Tensor bg = test::randn({O}, seed++).to(Device::CUDA);
    Tensor y0 = to_gpu(test::randn({1, H, W, O}, seed++));
    Tensor yref = y0.clone();
    cuda::conv3d(xg, wg, &bg, yref, pad1(), true);
    for (const char* tile : {"n96r8", "n96r4", "n192r4"}) {
      if (std::string(tile) == "n192r4" && O != 192) continue;
      Tensor yw = y0.clone();
      cuda::conv2d_wgmma(xg, wg, &bg, yw, true, tile);
      compare(yw, yref, 1e-4, cat("ring conv wgmma ", tile, " O=", O, " ", H, "x", W, " vs cuDNN").c_str());
    }
  }
  // The 2x2 sub-pixel form (output one pixel larger each way) over several frames, against the CPU.
  const int64_t n = 2, H = 60, W = 140, C = 32, O = 384;
  Tensor x = bf16_round(test::randn({n, H, W, C}, seed++)), w = bf16_round(test::randn({O, 1, 2, 2, C}, seed++, 0.1f));
  Tensor b = test::randn({O}, seed++);
  Tensor yc = Tensor::empty({n, H + 1, W + 1, O}, DType::F32);
  cpu::conv3d(x, w, &b, yc, pad1(), false);
  Tensor xg = to_gpu(x), wg = to_gpu(w), bg = b.to(Device::CUDA);
  for (const char* tile : {"n96r8", "n96r4", "n192r4"}) {
    Tensor yw = Tensor::empty({n, H + 1, W + 1, O}, DType::BF16, Device::CUDA);
    cuda::conv2d_wgmma(xg, wg, &bg, yw, false, tile);
    compare(yw, yc, 1e-4, cat("sub-pixel 2x2 wgmma ", tile, " O=", O, " 2 frames").c_str());
    // The phase shuffle in the epilogue moves exactly those values.
    Tensor shuffled = Tensor::empty({n, 2 * H, 2 * W, O / 4}, DType::BF16, Device::CUDA);
    Tensor fused = Tensor::empty({n, 2 * H, 2 * W, O / 4}, DType::BF16, Device::CUDA);
    cuda::vae_phase_shuffle(yw, shuffled);
    cuda::conv2d_wgmma_subpixel(xg, wg, &bg, fused, tile);
    EXPECT_EQ(test::max_abs_diff(fused.to(Device::CPU).to(DType::F32), shuffled.to(Device::CPU).to(DType::F32)), 0.0)
        << "sub-pixel conv with the shuffle fused, tile " << tile;
  }
}

// Bad input to the wgmma conv is a td::Error naming it, not a fault: unsupported outputs, a misaligned view,
// f32 data, a history of another frame size.
TEST(VaeCuda, WgmmaConvRejectsBadInput) {
  TD_SKIP_WITHOUT_CUDA();
  if (!wgmma_convs_here()) GTEST_SKIP() << "needs an sm_90 GPU and an sm_90a build";
  Tensor x = to_gpu(test::randn({1, 8, 64, 33}, 1)), w = to_gpu(test::randn({96, 1, 3, 3, 32}, 2, 0.05f));
  Tensor y = Tensor::empty({1, 8, 64, 96}, DType::BF16, Device::CUDA);
  Tensor x32 = x.slice(3, 0, 32).contiguous();
  Tensor w8 = to_gpu(test::randn({8, 1, 3, 3, 32}, 3));
  EXPECT_THROW(cuda::conv2d_wgmma(x32, w8, nullptr, y, false), Error);  // 8 outputs
  Tensor flat = x.view({-1});
  Tensor off = flat.slice(0, 1, 1 + 8 * 64 * 32).view({1, 8, 64, 32});  // 2-byte offset: not 16-byte aligned
  EXPECT_THROW(cuda::conv2d_wgmma(off, w, nullptr, y, false), Error);
  EXPECT_THROW(cuda::conv2d_wgmma(x32.to(DType::F32), w, nullptr, y, false), Error);
  Tensor wt = to_gpu(test::randn({96, 3, 3, 3, 32}, 4, 0.05f)), hist = to_gpu(test::randn({2, 8, 60, 32}, 5));
  EXPECT_THROW(cuda::conv3d_causal_wgmma(hist, x32, wt, nullptr, y, false), Error);
  // The sub-pixel conv with the shuffle: 96 outputs are not 4 phases of a multiple of 96; a wrong output frame.
  Tensor w2 = to_gpu(test::randn({96, 1, 2, 2, 32}, 6, 0.05f)), w2ok = to_gpu(test::randn({384, 1, 2, 2, 32}, 7, 0.05f));
  Tensor ys = Tensor::empty({1, 16, 128, 96}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::conv2d_wgmma_subpixel(x32, w2, nullptr, ys), Error);
  Tensor ybad = Tensor::empty({1, 16, 126, 96}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::conv2d_wgmma_subpixel(x32, w2ok, nullptr, ybad), Error);
  // The fused norm with a residual of another size.
  Tensor g = test::randn({96}, 8).to(Device::CUDA), ring = Tensor::empty({1, 8, 64, 288}, DType::BF16, Device::CUDA);
  Tensor res_bad = Tensor::empty({1, 8, 63, 96}, DType::BF16, Device::CUDA);
  EXPECT_THROW(cuda::conv2d_wgmma_norm(x32, w, nullptr, cuda::ConvNormOut{&g, &ring, 96, &res_bad}), Error);
  cuda::conv2d_wgmma_subpixel(x32, w2ok, nullptr, ys);
  cuda::conv2d_wgmma(x32, w, nullptr, y, false);  // and the good calls still work
  device_synchronize();
}

// The ring conv with the next RMS norm + SiLU fused into its epilogue (cuda::conv3d_ring_norm) against the CPU conv
// followed by the CPU norm (conv bias as the pre-bias): the written slot matches, the other two slots stay untouched.
TEST(VaeCuda, RingConvNormFusedMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  if (!wgmma_convs_here()) GTEST_SKIP() << "needs an sm_90 GPU and an sm_90a build";
  uint64_t seed = 500;
  for (int64_t O : {96, 192}) {
    const int64_t H = 21, W = 150, CP = 3 * O;
    Tensor x = bf16_round(test::randn({1, H, W, CP}, seed++));
    Tensor w = bf16_round(test::randn({O, 1, 3, 3, CP}, seed++, 0.05f));
    Tensor b = test::randn({O}, seed++), g = test::randn({O}, seed++, 0.2f, 1.f);
    Tensor yc = Tensor::empty({1, H, W, O}, DType::F32), nc = Tensor::empty({1, H, W, O}, DType::F32);
    cpu::conv3d(x, w, nullptr, yc, pad1(), false);
    cpu::vae_rms_norm(yc, g, &b, true, nc);
    Tensor ring = to_gpu(test::randn({1, H, W, 3 * O}, seed++));
    Tensor before = ring.to(Device::CPU).to(DType::F32);
    Tensor bg = b.to(Device::CUDA), gg = g.to(Device::CUDA);
    const int slot = 1;
    ASSERT_TRUE(cuda::conv3d_ring_norm(to_gpu(x), to_gpu(w), &bg, gg, ring, slot, pad1()));  // the decoder's route
    Tensor after = ring.to(Device::CPU).to(DType::F32);
    compare(after.slice(3, slot * O, slot * O + O).contiguous(), nc, 1e-4, cat("ring conv + fused norm O=", O).c_str());
    for (int other : {0, 2})
      EXPECT_EQ(test::max_abs_diff(after.slice(3, other * O, other * O + O).contiguous(),
                                   before.slice(3, other * O, other * O + O).contiguous()), 0.0)
          << "slot " << other << " was overwritten";
  }
}

// A residual block's conv2 with the next block's norm1 in its epilogue: y += conv + bias is stored, and the norm of
// y + pre_bias goes into the ring slot; both against the CPU conv, sum and norm.
TEST(VaeCuda, RingConvResidualNormFusedMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  if (!wgmma_convs_here()) GTEST_SKIP() << "needs an sm_90 GPU and an sm_90a build";
  for (const char* off : {"TD_VAE_FUSED_NORM", "TD_VAE_FUSED_RES_NORM"})
    if (const char* e = std::getenv(off); e && std::string(e) == "0") GTEST_SKIP() << off << "=0";
  const char* only96 = std::getenv("TD_VAE_FUSED_RES_NORM");
  uint64_t seed = 700;
  for (int64_t O : {96, 192}) {
    if (O == 192 && only96 && std::string(only96) == "96") continue;
    const int64_t H = 21, W = 150, CP = 3 * O;
    Tensor x = bf16_round(test::randn({1, H, W, CP}, seed++));
    Tensor w = bf16_round(test::randn({O, 1, 3, 3, CP}, seed++, 0.05f));
    Tensor b = test::randn({O}, seed++), g = test::randn({O}, seed++, 0.2f, 1.f), pre = test::randn({O}, seed++);
    Tensor yc = bf16_round(test::randn({1, H, W, O}, seed++)), nc = Tensor::empty({1, H, W, O}, DType::F32);
    Tensor yg = to_gpu(yc);
    cpu::conv3d(x, w, &b, yc, pad1(), true);
    cpu::vae_rms_norm(yc, g, &pre, true, nc);
    Tensor ring = to_gpu(test::randn({1, H, W, 3 * O}, seed++));
    Tensor before = ring.to(Device::CPU).to(DType::F32);
    Tensor bg = b.to(Device::CUDA), gg = g.to(Device::CUDA), pg = pre.to(Device::CUDA);
    const int slot = 2;
    ASSERT_TRUE(cuda::conv3d_ring_norm(to_gpu(x), to_gpu(w), &bg, gg, ring, slot, pad1(), &yg, &pg));
    compare(yg, yc, 1e-4, cat("ring conv + residual O=", O).c_str());
    Tensor after = ring.to(Device::CPU).to(DType::F32);
    compare(after.slice(3, slot * O, slot * O + O).contiguous(), nc, 1e-4,
            cat("ring conv + residual + fused norm O=", O).c_str());
    for (int other : {0, 1})
      EXPECT_EQ(test::max_abs_diff(after.slice(3, other * O, other * O + O).contiguous(),
                                   before.slice(3, other * O, other * O + O).contiguous()), 0.0)
          << "slot " << other << " was overwritten";
  }
}

TEST(VaeCuda, CausalConvInPlaceMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  // O = 16: cuDNN 2-D taps; O = 96 (sm_90a): the wgmma kernel, 70 px wide so tiles are partial.
  uint64_t seed = 100;
  for (const auto& [O, W] : {std::pair<int64_t, int64_t>{16, 10}, {96, 70}}) {
  const int64_t H = 6, C = 32;
  Tensor w = bf16_round(test::randn({O, 3, 3, 3, C}, seed++, 0.1f)), b = test::randn({O}, seed++);
  ASSERT_TRUE(cuda::conv3d_causal_direct(w) || std::getenv("TD_VAE_CONV")) << "expected the in-place path";
  Tensor wg = to_gpu(w), bg = b.to(Device::CUDA);
  for (int cf = 0; cf <= 2; cf++)
    for (int n = 1; n <= 3; n++)
      for (int acc = 0; acc <= 1; acc++) {
        Tensor x = bf16_round(test::randn({n, H, W, C}, seed++));
        Tensor hist = cf ? bf16_round(test::randn({cf, H, W, C}, seed++)) : Tensor();
        Tensor buf = Tensor::zeros({n + 2, H, W, C}, DType::F32);
        if (cf) buf.slice(0, 2 - cf, 2).copy_from(hist);
        buf.slice(0, 2, n + 2).copy_from(x);
        Tensor yc = acc ? bf16_round(test::randn({n, H, W, O}, seed++)) : Tensor::empty({n, H, W, O}, DType::F32);
        Tensor yg = acc ? to_gpu(yc) : Tensor::empty({n, H, W, O}, DType::BF16, Device::CUDA);
        cpu::conv3d(buf, w, &b, yc, pad1(), acc);
        cuda::conv3d_causal(cf ? to_gpu(hist) : Tensor(), to_gpu(x), wg, &bg, yg, pad1(), acc);
        compare(yg, yc, 1e-4, cat("causal in place O ", O, " cf ", cf, " n ", n, acc ? " acc" : "").c_str());
      }
  }
}

TEST(VaeCuda, SmallOpsMatchCpu) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor x = bf16_round(test::randn({2, 5, 7, 40}, 1));
  Tensor g = test::randn({40}, 2, 0.2f, 1.f), b = test::randn({40}, 3);
  Tensor yc = Tensor::empty(x.shape(), DType::F32), yg = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  cpu::vae_rms_norm(x, g, &b, true, yc);
  Tensor gg = g.to(Device::CUDA), bg = b.to(Device::CUDA);
  cuda::vae_rms_norm(to_gpu(x), gg, &bg, true, yg);
  compare(yg, yc, 1e-4, "rms_norm + silu");

  Tensor qkv = bf16_round(test::randn({300, 96}, 4));
  Tensor oc = Tensor::empty({300, 32}, DType::F32), og = Tensor::empty({300, 32}, DType::BF16, Device::CUDA);
  cpu::vae_attention(qkv, oc);
  cuda::vae_attention(to_gpu(qkv), og);
  compare(og, oc, 1e-4, "attention");

  Tensor t = bf16_round(test::randn({2, 3, 4, 16}, 5));
  Tensor ic = Tensor::empty({4, 3, 4, 8}, DType::F32), ig = Tensor::empty({4, 3, 4, 8}, DType::BF16, Device::CUDA);
  cpu::vae_time_interleave(t, ic);
  cuda::vae_time_interleave(to_gpu(t), ig);
  EXPECT_EQ(test::max_abs_diff(ig, ic), 0.0);
  Tensor ps = bf16_round(test::randn({2, 4, 5, 4 * 8}, 6));
  Tensor pc = Tensor::empty({2, 6, 8, 8}, DType::F32), pg = Tensor::empty({2, 6, 8, 8}, DType::BF16, Device::CUDA);
  cpu::vae_phase_shuffle(ps, pc);
  cuda::vae_phase_shuffle(to_gpu(ps), pg);
  EXPECT_EQ(test::max_abs_diff(pg, pc), 0.0);
}

// The wide (16-byte, G lanes per row) norm kernel at the real channel counts, with a row count that leaves a warp's
// last step partly empty, pre-bias + SiLU and without, and in place (y aliasing x, as the decoder may call it).
TEST(VaeCuda, WideRmsNormMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  for (int C : {96, 192, 384}) {
    for (int variant = 0; variant < 2; variant++) {
      const bool silu = variant == 0;
      Tensor x = bf16_round(test::randn({3, 7, 11, C}, 10 + C));  // 231 rows
      Tensor g = test::randn({C}, 11 + C, 0.2f, 1.f), b = test::randn({C}, 12 + C);
      Tensor yc = Tensor::empty(x.shape(), DType::F32);
      cpu::vae_rms_norm(x, g, silu ? &b : nullptr, silu, yc);
      Tensor gg = g.to(Device::CUDA), bg = b.to(Device::CUDA);
      Tensor xg = to_gpu(x);
      Tensor yg = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
      cuda::vae_rms_norm(xg, gg, silu ? &bg : nullptr, silu, yg);
      const std::string what = "wide rms_norm C=" + std::to_string(C) + (silu ? " + bias + silu" : "");
      compare(yg, yc, 1e-4, what.c_str());
      cuda::vae_rms_norm(xg, gg, silu ? &bg : nullptr, silu, xg);  // in place
      EXPECT_EQ(test::max_abs_diff(xg, yg), 0.0) << what << " in place";
    }
  }
}

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
  // Streaming on the GPU path (frames reported as the downloader lands them): in order, final, complete.
  {
    int64_t next = 0;
    double worst = 0;
    std::vector<std::pair<int64_t, Tensor>> seen;
    VaeDecodeOptions so;
    so.on_frames = [&](const Tensor& video, int64_t f0, int64_t f1) {
      EXPECT_EQ(f0, next);
      next = f1;
      seen.emplace_back(f0, video.slice(1, f0, f1).contiguous());
    };
    Tensor vs = gpu.decode(z, so);
    EXPECT_EQ(next, vs.size(1));
    for (auto& e : seen)
      worst = std::max(worst, test::max_abs_diff(e.second, vs.slice(1, e.first, e.first + e.second.size(1)).contiguous()));
    EXPECT_EQ(worst, 0.0);
  }
  // The GPU runs these channel counts on frame rings by default; the per-tap / 3-D route must agree with it.
  ::setenv("TD_VAE_RING", "0", 1);
  WanVae taps(w, Device::CUDA, cfg);
  ::unsetenv("TD_VAE_RING");
  compare(taps.decode(z), vg, 5e-3, "dim-96 decode, rings off vs on");
  compare(taps.encode(v), gpu.encode(v), 5e-3, "dim-96 encode, rings off vs on");
  std::printf("[ VaeCuda ] peak device memory %.1f MiB\n", device_peak_bytes() / 1048576.0);
}
