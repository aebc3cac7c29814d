// W8A8 on the GPU against the CPU reference: the int32 accumulators bit-exact (odd M, partial M tiles), the
// activation quantizer bit-exact, dequantized outputs and every epilogue within NMSE bounds, the fused norm kernels,
// and bad shapes rejected with td::Error.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/w8a8_ref.h"
#include "cuda/w8a8_gemm.h"
#include "cuda/w8a8_gemm_config.h"
#include "ops/w8a8.h"
#include "test_util.h"

namespace td {
namespace {

using test::nmse;
using test::randint8;
using test::randn;

Tensor dev(const Tensor& t) { return t.to(Device::CUDA); }
Tensor host(const Tensor& t) { return t.to(Device::CPU); }

// Every GEMM test runs on each kernel this build has.
std::vector<const char*> kernels() {
  std::vector<const char*> k;
  for (const char* v : cuda::w8a8_kernel_names())
    if (cuda::w8a8_kernel_runs(v)) k.push_back(v);
  return k;
}

// NMSE bound of a kernel's fp32 output against the CPU's exact dequantization. The mma.sync kernel folds each K block
// exactly (1e-10 leaves room for fp32 summation order); the sm_90a kernels remove the fold's magic number only every
// w8a8cfg::kFoldUnbiasEvery K blocks, which rounds at ~1e-4 relative (measured NMSE 4e-9 to 8e-9 here), hence 5e-8:
// still far below the bf16 output rounding (~1e-6) and any real fold error (a wrong scale or block is >= 1e-3).
double fold_nmse_bound(const char* kn) {
  return std::string(kn) == "mma" || cuda::w8a8cfg::kFoldUnbiasEvery == 0 ? 1e-10 : 5e-8;
}

struct KernelScope {
  explicit KernelScope(const char* k) { cuda::set_w8a8_kernel(k); }
  ~KernelScope() { cuda::set_w8a8_kernel("auto"); }
};

TEST(W8A8Cuda, Int32AccumulatorBitExactOddM) {
  TD_SKIP_WITHOUT_CUDA();
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    for (int64_t M : {1, 37, 127, 129, 300}) {
      for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{128, 128}, {256, 384}, {384, 1152}}) {
        Tensor a = randint8({M, K}, 100 + M), b = randint8({N, K}, 200 + N);
        Tensor c_ref = Tensor::empty({M, N}, DType::I32);
        cpu::gemm_s8s8_s32(a, b, c_ref);
        Tensor c = Tensor::empty({M, N}, DType::I32, Device::CUDA);
        ops::gemm_s8s8_s32(dev(a), dev(b), c);
        Tensor ch = host(c);
        int64_t bad = 0;
        for (int64_t i = 0; i < M * N; i++) bad += ch.ptr<int32_t>()[i] != c_ref.ptr<int32_t>()[i];
        ASSERT_EQ(bad, 0) << kn << " M=" << M << " N=" << N << " K=" << K;
      }
    }
    // Saturated extremes: every product is +16384.
    const int64_t M = 5, N = 128, K = 2048;
    Tensor a = Tensor::empty({M, K}, DType::I8), b = Tensor::empty({N, K}, DType::I8);
    std::memset(a.data(), 0x80, a.nbytes());
    std::memset(b.data(), 0x80, b.nbytes());
    Tensor c = Tensor::empty({M, N}, DType::I32, Device::CUDA);
    ops::gemm_s8s8_s32(dev(a), dev(b), c);
    Tensor ch = host(c);
    for (int64_t i = 0; i < M * N; i++) ASSERT_EQ(ch.ptr<int32_t>()[i], 16384 * K) << kn;
  }
}

TEST(W8A8Cuda, ActivationQuantBitExact) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 77, K = 640;
  Tensor x = randn({M, K}, 7, 3.f);
  for (int64_t m = 0; m < M; m++) x.ptr<float>()[m * K + 5] *= 40.f;  // an outlier channel
  for (int64_t k = 256; k < 384; k++) x.ptr<float>()[3 * K + k] = 0.f;  // an all-zero group
  for (DType dt : {DType::BF16, DType::F32}) {
    Tensor xd = x.to(dt);                   // host, rounded to dt
    Tensor xf = xd.to(DType::F32);          // exactly what the GPU sees
    ops::Int8Act ref, got;
    ops::quantize_act_int8(xf, ref);
    ops::quantize_act_int8(dev(xd), got);
    Tensor q = host(got.q), s = host(got.scale);
    for (int64_t i = 0; i < M * K; i++) ASSERT_EQ(q.ptr<int8_t>()[i], ref.q.ptr<int8_t>()[i]) << i;
    for (int64_t i = 0; i < M * K / 128; i++) ASSERT_EQ(s.ptr<float>()[i], ref.scale.ptr<float>()[i]) << i;
  }
}

TEST(W8A8Cuda, LinearEpiloguesMatchCpu) {
  TD_SKIP_WITHOUT_CUDA();
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    for (int64_t M : {3, 200}) {
      const int64_t K = 768, N = 512;  // a multiple of 256: ws256 runs its own kernel (two 128-column halves)
      Tensor x = randn({M, K}, 40 + M), w = randn({N, K}, 41, 0.04f), bias = randn({N}, 42, 0.2f);
      Tensor gate = randn({N}, 43), r0 = randn({M, N}, 44);
      Tensor wq, ws;
      ops::quantize_weight_int8(w, wq, ws);
      // Quantize once on the host so both sides multiply the same int8 operands.
      ops::Int8Act a;
      ops::quantize_act_int8(x, a);
      ops::Int8Act ad{dev(a.q), dev(a.scale)};
      Tensor wqd = dev(wq), wsd = dev(ws);
      for (Epilogue ep : {Epilogue::None, Epilogue::GeluTanh}) {
        Tensor ref = Tensor::empty({M, N}, DType::F32);
        ops::linear_w8a8(a, wq, ws, &bias, ref, ep);
        Tensor yf = Tensor::empty({M, N}, DType::F32, Device::CUDA);
        Tensor bias_d = dev(bias);
        ops::linear_w8a8(ad, wqd, wsd, &bias_d, yf, ep);
        EXPECT_LT(nmse(yf, ref), fold_nmse_bound(kn)) << kn << " f32 out, M=" << M;
        Tensor yb = Tensor::empty({M, N}, DType::BF16, Device::CUDA);
        Tensor bias_b = dev(bias.to(DType::BF16));
        ops::linear_w8a8(ad, wqd, wsd, &bias_b, yb, ep);
        EXPECT_LT(nmse(yb, ref), 3e-5) << kn << " bf16 out + bf16 bias, M=" << M;
      }
      // Gated residual, f32 stream.
      Tensor ref_r = r0.clone();
      ops::linear_w8a8_residual(a, wq, ws, &bias, &gate, ref_r);
      Tensor rd = dev(r0), gd = dev(gate), bd = dev(bias);
      ops::linear_w8a8_residual(ad, wqd, wsd, &bd, &gd, rd);
      EXPECT_LT(nmse(rd, ref_r), fold_nmse_bound(kn)) << kn << " residual, M=" << M;
      // And end to end from a bf16 activation (quantized on the GPU) against the unquantized truth.
      Tensor xb = dev(x.to(DType::BF16));
      Tensor y = Tensor::empty({M, N}, DType::BF16, Device::CUDA);
      ops::linear_w8a8(xb, wqd, wsd, &bd, y);
      Tensor truth = Tensor::empty({M, N}, DType::F32);
      {
        const Tensor xf = x.to(DType::BF16).to(DType::F32);
        for (int64_t m = 0; m < M; m++)
          for (int64_t n = 0; n < N; n++) {
            double s = bias.ptr<float>()[n];
            for (int64_t k = 0; k < K; k++) s += double(xf.ptr<float>()[m * K + k]) * w.ptr<float>()[n * K + k];
            truth.ptr<float>()[m * N + n] = float(s);
          }
      }
      EXPECT_LT(nmse(y, truth), 5e-4) << kn << " W8A8 vs fp32, M=" << M;
    }
  }
}

// Saturated operands through the dequantizing kernels: every int8 product is +16384, so a K block sums to 2^21,
// inside the +-2^22 window in which the sm_90a folds read an int32 sum plus 1.5 * 2^23 as a float. Per-block scales
// differ (powers of two, so the truth is exact in fp32), K = 640 has an odd block count, and the magic number's share
// comes off every kFoldUnbiasEvery blocks: a sum past the window or a lost share would be wrong by a factor, not by
// rounding.
TEST(W8A8Cuda, SaturatedOperandsDequantizeExactly) {
  TD_SKIP_WITHOUT_CUDA();
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    for (const int64_t K : {640, 2048}) {
      const int64_t M = 5, N = 256, KB = K / 128;
      ops::Int8Act a{Tensor::empty({M, K}, DType::I8), Tensor::empty({M, KB}, DType::F32)};
      Tensor wq = Tensor::empty({N, K}, DType::I8), ws = Tensor::empty({N / 128, KB}, DType::F32);
      std::memset(a.q.data(), 0x80, a.q.nbytes());
      std::memset(wq.data(), 0x80, wq.nbytes());
      for (int64_t m = 0; m < M; m++)
        for (int64_t kb = 0; kb < KB; kb++) a.scale.ptr<float>()[m * KB + kb] = std::ldexp(1.f, -20 - int((m + kb) % 3));
      for (int64_t nb = 0; nb < N / 128; nb++)
        for (int64_t kb = 0; kb < KB; kb++) ws.ptr<float>()[nb * KB + kb] = std::ldexp(1.f, -int((nb + 2 * kb) % 5));
      ops::Int8Act ad{dev(a.q), dev(a.scale)};
      Tensor y = Tensor::empty({M, N}, DType::F32, Device::CUDA);
      ops::linear_w8a8(ad, dev(wq), dev(ws), nullptr, y);
      Tensor yh = host(y);
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double truth = 0;
          for (int64_t kb = 0; kb < KB; kb++)
            truth += 16384.0 * 128 * a.scale.ptr<float>()[m * KB + kb] * ws.ptr<float>()[(n / 128) * KB + kb];
          ASSERT_NEAR(yh.ptr<float>()[m * N + n], truth, 1e-3 * truth)
              << kn << " K=" << K << " m=" << m << " n=" << n;
        }
    }
  }
}

// A quantizing epilogue's int8 output (on the device) against the CPU's: every code within one step (ADD_FAILURE
// otherwise), the number of one-step flips, and the NMSE of the dequantized values.
struct Int8OutDiff {
  int64_t flips = 0;
  double nmse = INFINITY;
};
Int8OutDiff compare_int8_out(const ops::Int8Act& got, const ops::Int8Act& ref, const char* kn) {
  Int8OutDiff r;
  const Tensor q = host(got.q), s = host(got.scale);
  if (q.shape() != ref.q.shape() || s.shape() != ref.scale.shape()) {
    ADD_FAILURE() << kn << ": int8 output or scales of the wrong shape";
    return r;
  }
  const int64_t M = q.size(0), N = q.size(1);
  Tensor dg = Tensor::empty({M, N}, DType::F32), dr = Tensor::empty({M, N}, DType::F32);
  for (int64_t i = 0; i < M * N; i++) {
    const int d = std::abs(int(q.ptr<int8_t>()[i]) - int(ref.q.ptr<int8_t>()[i]));
    if (d > 1) {
      ADD_FAILURE() << kn << ": int8 code " << int(q.ptr<int8_t>()[i]) << " vs " << int(ref.q.ptr<int8_t>()[i])
                    << " at " << i;
      return r;
    }
    r.flips += d;
    const int64_t si = (i / N) * (N / 128) + (i % N) / 128;
    dg.ptr<float>()[i] = q.ptr<int8_t>()[i] * s.ptr<float>()[si];
    dr.ptr<float>()[i] = ref.q.ptr<int8_t>()[i] * ref.scale.ptr<float>()[si];
  }
  r.nmse = nmse(dg, dr);
  return r;
}

// ffn.0 -> int8 directly (GELU + 1x128 quantization in the GEMM epilogue on wgmma; bf16 temporary on mma.sync).
TEST(W8A8Cuda, QuantizingEpilogueMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    for (int64_t M : {5, 130}) {
      const int64_t K = 384, N = 512;
      Tensor x = randn({M, K}, 90 + M), w = randn({N, K}, 91, 0.05f), bias = randn({N}, 92, 0.3f);
      Tensor wq, ws;
      ops::quantize_weight_int8(w, wq, ws);
      ops::Int8Act a, ref, got;
      ops::quantize_act_int8(x, a);
      ops::linear_w8a8_quant(a, wq, ws, &bias, ref, Epilogue::GeluTanh);
      ops::Int8Act ad{dev(a.q), dev(a.scale)};
      Tensor bd = dev(bias);
      ops::linear_w8a8_quant(ad, dev(wq), dev(ws), &bd, got, Epilogue::GeluTanh);
      ASSERT_TRUE(got.q.is_cuda());
      const Int8OutDiff d = compare_int8_out(got, ref, kn);
      // mma.sync rounds the GEMM result to a bf16 temporary before quantizing: that moves some amax values and
      // flips more int8 steps (3e-5 measured on H100), so it gets a looser bound than the fp32 wgmma epilogue.
      EXPECT_LT(d.nmse, std::string(kn) == "mma" ? 1e-4 : 2e-5) << kn << " M=" << M;
      // From fp32 (wgmma) only near-ties move; through bf16 (mma.sync) more do.
      if (std::string(kn) != "mma") {
        EXPECT_LT(d.flips, M * N / 500) << kn << " M=" << M;
      }
    }
  }
}

// The staged bf16 and int8 epilogues at a K long enough for ws256's TMA-store form (kWideTmaMinK: three stages, two
// staging buffers per warpgroup), on every kernel: a partial last M tile (clipped by the TMA unit) and four 128 x 256
// tiles per row of tiles, so each warpgroup alternates its buffers across tiles.
TEST(W8A8Cuda, LongKStagedEpiloguesMatchCpu) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 300, K = cuda::w8a8cfg::kWideTmaMinK, N = 1024;
  Tensor x = randn({M, K}, 95), w = randn({N, K}, 96, 0.02f), bias = randn({N}, 97, 0.3f);
  Tensor wq, ws;
  ops::quantize_weight_int8(w, wq, ws);
  ops::Int8Act a, ref_q;
  ops::quantize_act_int8(x, a);
  Tensor ref = Tensor::empty({M, N}, DType::F32);
  ops::linear_w8a8(a, wq, ws, &bias, ref);
  ops::linear_w8a8_quant(a, wq, ws, &bias, ref_q, Epilogue::GeluTanh);
  ops::Int8Act ad{dev(a.q), dev(a.scale)};
  Tensor wqd = dev(wq), wsd = dev(ws), bd = dev(bias.to(DType::BF16)), bf = dev(bias);
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    Tensor yb = Tensor::empty({M, N}, DType::BF16, Device::CUDA);
    ops::linear_w8a8(ad, wqd, wsd, &bd, yb);
    EXPECT_LT(nmse(yb, ref), 3e-5) << kn << " bf16 out";
    ops::Int8Act got;
    ops::linear_w8a8_quant(ad, wqd, wsd, &bf, got, Epilogue::GeluTanh);
    EXPECT_LT(compare_int8_out(got, ref_q, kn).nmse, std::string(kn) == "mma" ? 1e-4 : 2e-5) << kn << " int8 out";
  }
}

TEST(W8A8Cuda, RejectsBadShapes) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor wq, ws;
  ops::quantize_weight_int8(randn({200, 128}, 1), wq, ws);  // N = 200
  Tensor x = dev(randn({4, 128}, 2).to(DType::BF16)), y = Tensor::empty({4, 200}, DType::BF16, Device::CUDA);
  EXPECT_THROW(ops::linear_w8a8(x, dev(wq), dev(ws), nullptr, y), Error);
  Tensor x2 = dev(randn({4, 100}, 2).to(DType::BF16));  // K = 100
  ops::Int8Act a;
  EXPECT_THROW(ops::quantize_act_int8(x2, a), Error);
  Tensor c = Tensor::empty({4, 128}, DType::I32, Device::CUDA);
  EXPECT_THROW(ops::gemm_s8s8_s32(dev(randint8({4, 96}, 1)), dev(randint8({128, 96}, 2)), c), Error);
  EXPECT_THROW(cuda::set_w8a8_kernel("bogus"), Error);
}

TEST(W8A8Cuda, FusedNormQuantMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  // 1536: one warp per row (12 groups); 5120: one CTA per row, width compiled in (10 chunks per thread); 640: one CTA
  // per row, width decided at run time.
  for (int64_t D : {1536, 5120, 640}) {
    const int64_t M = 33;
    Tensor x = randn({M, D}, 50, 3.f, 0.7f), shift = randn({D}, 51, 0.3f), scale = randn({D}, 52, 0.3f);
    Tensor wgt = randn({D}, 53, 0.2f, 1.f), bias = randn({D}, 54, 0.1f);
    for (int variant = 0; variant < 2; variant++) {
      ops::Int8Act ref, got;
      if (variant == 0) {
        ops::layernorm_modulate_quant(x, shift, scale, 1e-6f, ref);
        ops::layernorm_modulate_quant(dev(x), dev(shift), dev(scale), 1e-6f, got);
      } else {
        // The GPU gets a bf16 affine weight; the CPU the same values in f32.
        Tensor wb = wgt.to(DType::BF16).to(DType::F32), wd = dev(wgt.to(DType::BF16)), bd = dev(bias);
        ops::layernorm_quant(x, &wb, &bias, 1e-6f, ref);
        ops::layernorm_quant(dev(x), &wd, &bd, 1e-6f, got);
      }
      Tensor q = host(got.q), s = host(got.scale);
      int64_t flips = 0;
      for (int64_t i = 0; i < M * D; i++) {
        const int d = std::abs(int(q.ptr<int8_t>()[i]) - int(ref.q.ptr<int8_t>()[i]));
        ASSERT_LE(d, 1) << "variant " << variant << " at " << i;
        flips += d;
      }
      EXPECT_LT(flips, M * D / 1000) << "variant " << variant;  // fp32 summation order only moves near-ties
      for (int64_t i = 0; i < M * D / 128; i++)
        ASSERT_NEAR(s.ptr<float>()[i], ref.scale.ptr<float>()[i], 1e-5 * ref.scale.ptr<float>()[i]);
    }
  }
  // bf16 input (the CUDA residual stream may be bf16 in other paths).
  Tensor x = randn({5, 1536}, 60), sh = randn({1536}, 61, 0.1f), sc = randn({1536}, 62, 0.1f);
  ops::Int8Act ref, got;
  ops::layernorm_modulate_quant(x.to(DType::BF16).to(DType::F32), sh, sc, 1e-6f, ref);
  ops::layernorm_modulate_quant(dev(x.to(DType::BF16)), dev(sh), dev(sc), 1e-6f, got);
  for (int64_t i = 0; i < 5 * 1536; i++)
    ASSERT_LE(std::abs(int(host(got.q).ptr<int8_t>()[i]) - int(ref.q.ptr<int8_t>()[i])), 1);
}

TEST(W8A8Cuda, RmsNormRope3dMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  const int F = 3, H = 5, W = 7;
  // 1.3B (one warp per row), 14B (one CTA per row, width compiled in) and 5 heads (one CTA per row, run-time width)
  for (int heads : {12, 40, 5}) {
    const int64_t L = F * H * W, D = heads * 128;
    Tensor x = randn({L, D}, 70, 2.f), w = randn({D}, 71, 0.2f, 1.f);
    Tensor ref = x.clone();
    ops::rmsnorm_rope3d(ref, w, 1e-6f, heads, F, H, W);
    Tensor xd = dev(x), wd = dev(w);
    ops::rmsnorm_rope3d(xd, wd, 1e-6f, heads, F, H, W);
    EXPECT_LT(nmse(xd, ref), 1e-11) << heads;
    Tensor xb = dev(x.to(DType::BF16));
    ops::rmsnorm_rope3d(xb, wd, 1e-6f, heads, F, H, W);
    EXPECT_LT(nmse(xb, ref), 2e-5) << heads;
    Tensor bad = dev(x);
    EXPECT_THROW(ops::rmsnorm_rope3d(bad, wd, 1e-6f, heads, F, H + 1, W), Error);
  }
}

// One Wan shape end to end (1.3B ffn.0: K=1536 -> N=8960, GELU), a slice of rows checked on the CPU.
TEST(W8A8Cuda, WanShapeSpotCheck) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 1000, K = 1536, N = 8960;
  Tensor x = randn({M, K}, 80), w = randn({N, K}, 81, 0.03f), b = randn({N}, 82, 0.1f);
  Tensor wq, ws;
  ops::quantize_weight_int8(w, wq, ws);
  ops::Int8Act a;
  ops::quantize_act_int8(x, a);
  ops::Int8Act ad{dev(a.q), dev(a.scale)};
  Tensor y = Tensor::empty({M, N}, DType::F32, Device::CUDA), bd = dev(b), wqd = dev(wq), wsd = dev(ws);
  const int64_t rows = 24, r0 = M - rows;  // the last rows include the partial M tile
  ops::Int8Act as{a.q.slice(0, r0, M).contiguous(), a.scale.slice(0, r0, M).contiguous()};
  Tensor ref = Tensor::empty({rows, N}, DType::F32);
  ops::linear_w8a8(as, wq, ws, &b, ref, Epilogue::GeluTanh);
  // 8 x 70 tiles: the persistent kernels run several tiles per CTA here.
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    ops::linear_w8a8(ad, wqd, wsd, &bd, y, Epilogue::GeluTanh);
    EXPECT_LT(nmse(host(y).slice(0, r0, M).contiguous(), ref), fold_nmse_bound(kn)) << kn;
  }
}

// Every output element of a grid with more tiles than SMs (330 128x128 tiles; 165 two-tile clusters, the last one
// half past M; 165 128x256 tiles), so each persistent CTA carries its ring and barrier phases across tiles: int32
// exact, and the fp32 fold (accumulators reset per tile) against the CPU.
TEST(W8A8Cuda, PersistentMultiTileMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 4100, K = 384, N = 1280;
  Tensor a8 = randint8({M, K}, 71), b8 = randint8({N, K}, 72);
  Tensor c_ref = Tensor::empty({M, N}, DType::I32);
  cpu::gemm_s8s8_s32(a8, b8, c_ref);
  Tensor x = randn({M, K}, 73), w = randn({N, K}, 74, 0.05f);
  Tensor wq, ws;
  ops::quantize_weight_int8(w, wq, ws);
  ops::Int8Act a;
  ops::quantize_act_int8(x, a);
  Tensor ref = Tensor::empty({M, N}, DType::F32);
  ops::linear_w8a8(a, wq, ws, nullptr, ref, Epilogue::None);
  ops::Int8Act ad{dev(a.q), dev(a.scale)};
  Tensor a8d = dev(a8), b8d = dev(b8), wqd = dev(wq), wsd = dev(ws);
  for (const char* kn : kernels()) {
    KernelScope ks(kn);
    Tensor c = Tensor::empty({M, N}, DType::I32, Device::CUDA);
    ops::gemm_s8s8_s32(a8d, b8d, c);
    Tensor ch = host(c);
    int64_t bad = 0;
    for (int64_t i = 0; i < M * N; i++) bad += ch.ptr<int32_t>()[i] != c_ref.ptr<int32_t>()[i];
    EXPECT_EQ(bad, 0) << kn;
    Tensor y = Tensor::empty({M, N}, DType::F32, Device::CUDA);
    ops::linear_w8a8(ad, wqd, wsd, nullptr, y, Epilogue::None);
    EXPECT_LT(nmse(host(y), ref), fold_nmse_bound(kn)) << kn;
  }
}

// One to three K blocks: ws2 issues block 0 before its loop and finishes on either accumulator set depending on the
// block count's parity, so K = 128 and 256 run paths that the longer GEMMs above never take (persistent CTAs with
// several tiles each, so the ring phases also carry over between such tiles).
TEST(W8A8Cuda, ShortKMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t M = 1300, N = 1024;
  for (const int64_t K : {128, 256, 384}) {
    Tensor x = randn({M, K}, 300 + K), w = randn({N, K}, 301 + K, 0.05f), bias = randn({N}, 302, 0.2f);
    Tensor wq, ws;
    ops::quantize_weight_int8(w, wq, ws);
    ops::Int8Act a;
    ops::quantize_act_int8(x, a);
    Tensor ref = Tensor::empty({M, N}, DType::F32);
    ops::linear_w8a8(a, wq, ws, &bias, ref, Epilogue::None);
    ops::Int8Act ad{dev(a.q), dev(a.scale)};
    Tensor wqd = dev(wq), wsd = dev(ws), bd = dev(bias);
    for (const char* kn : kernels()) {
      KernelScope ks(kn);
      Tensor y = Tensor::empty({M, N}, DType::F32, Device::CUDA);
      ops::linear_w8a8(ad, wqd, wsd, &bd, y, Epilogue::None);
      EXPECT_LT(nmse(host(y), ref), fold_nmse_bound(kn)) << kn << " K=" << K;
    }
  }
}

}  // namespace
}  // namespace td
