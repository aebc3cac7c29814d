// umT5 encoder on CUDA against the CPU reference path (tiny fixture model), INT8 error, padding invariance, and the
// standalone kernels against their CPU counterparts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cpu/t5_ops.h"
#include "cuda/t5_kernels.h"
#include "model/t5/t5_encoder.h"
#include "test_util.h"

namespace {

const std::string kFix = std::string(TD_SOURCE_DIR) + "/tests/fixtures/t5/";
td::T5Config tiny() { return td::T5Config::from_json_file(kFix + "tiny_config.json"); }

std::vector<int32_t> some_ids(int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n - 1; i++) ids.push_back((i * 37 + 3) % 250 + 3);
  ids.push_back(1);
  return ids;
}

TEST(T5Cuda, TinyEncoderMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  td::T5Options cpu, gpu;
  gpu.device = td::Device::CUDA;
  auto a = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), cpu);
  auto b = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), gpu);
  for (int n : {1, 7, 64, 65, 200, 512}) {
    auto ids = some_ids(n);
    double e = td::test::nmse(b->encode(ids), a->encode(ids));
    EXPECT_LT(e, 1e-3) << n << " tokens";  // bf16 activations into the GEMMs vs fp32
  }
}

TEST(T5Cuda, Int8CloseToBf16) {
  TD_SKIP_WITHOUT_CUDA();
  td::T5Options gpu;
  gpu.device = td::Device::CUDA;
  auto a = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), gpu);
  gpu.int8 = true;
  auto b = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), gpu);
  auto ids = some_ids(100);
  double e = td::test::nmse(b->encode(ids), a->encode(ids));
  std::printf("t5 cuda int8 vs bf16: NMSE %.3g\n", e);
  EXPECT_LT(e, 3e-3);
  EXPECT_LT(b->device_weight_bytes(), a->device_weight_bytes() * 6 / 10);
}

// INT8 on the GPU (widened on a side stream, double-buffered across the 8 matrices of the tiny model) against
// INT8 on the CPU (same per-128 quantization): only the bf16 activations differ. Two runs must agree exactly:
// a race between the widening and the GEMMs would show up as a difference.
TEST(T5Cuda, Int8MatchesCpuInt8AndRepeats) {
  TD_SKIP_WITHOUT_CUDA();
  td::T5Options cpu, gpu;
  cpu.int8 = gpu.int8 = true;
  gpu.device = td::Device::CUDA;
  auto a = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), cpu);
  auto b = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), gpu);
  for (int n : {5, 130}) {
    auto ids = some_ids(n);
    td::Tensor g1 = b->encode(ids), g2 = b->encode(ids);
    EXPECT_EQ(td::test::max_abs_diff(g1, g2), 0.0) << n << " tokens";
    EXPECT_LT(td::test::nmse(g1, a->encode(ids)), 1e-3) << n << " tokens";
  }
}

TEST(T5Cuda, PaddingInvariance) {
  TD_SKIP_WITHOUT_CUDA();
  td::T5Options gpu;
  gpu.device = td::Device::CUDA;
  auto enc = td::T5Encoder::load(kFix + "tiny_t5.safetensors", tiny(), gpu);
  auto ids = some_ids(20);
  td::Tensor base = enc->encode(ids);
  std::vector<int32_t> p = ids, mask(ids.size(), 1);
  for (int i = 0; i < 50; i++) {
    p.push_back(0);
    mask.push_back(0);
  }
  td::Tensor out = enc->encode_padded(p, mask).slice(0, 0, int64_t(ids.size())).contiguous();
  EXPECT_LT(td::test::nmse(out, base), 1e-5);
}

// head_dim 32/64/128 run the tensor-core kernel, 16 and 40 the scalar one. Masks: none, one padding key, and a
// padded prefix longer than one 64-key tile (rows whose first tile is fully masked: online softmax from -inf).
TEST(T5Cuda, AttentionKernelMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  struct Case {
    int Dh, L, H, mask;  // mask: 0 none, 1 key L-2 padded, 2 keys [0, 70) padded
  };
  const Case cases[] = {{64, 1, 4, 0},  {64, 33, 4, 1},  {64, 130, 4, 1}, {64, 512, 2, 0}, {64, 200, 2, 2},
                        {32, 77, 4, 1}, {128, 150, 2, 2}, {16, 40, 4, 1},  {40, 65, 2, 1}};
  for (const Case& c : cases) {
    const int H = c.H, Dh = c.Dh, A = H * Dh, L = c.L;
    td::Tensor qkv = td::test::randn({L, 3 * A}, 11 + L + Dh, 0.3f);
    td::Tensor qkv_bf = qkv.to(td::DType::BF16).to(td::DType::F32);  // the GPU sees bf16 inputs
    td::Tensor pos = td::test::randn({32, H}, 5);
    std::vector<int32_t> mask(size_t(L), 1);
    if (c.mask == 1 && L > 3) mask[size_t(L - 2)] = 0;
    if (c.mask == 2)
      for (int j = 0; j < std::min(L - 1, 70); j++) mask[size_t(j)] = 0;
    td::Tensor q = qkv_bf.slice(1, 0, A).contiguous(), k = qkv_bf.slice(1, A, 2 * A).contiguous(),
               v = qkv_bf.slice(1, 2 * A, 3 * A).contiguous();
    td::Tensor ref = td::Tensor::empty({L, A}, td::DType::F32);
    td::cpu::t5_attention(q, k, v, pos, c.mask ? mask.data() : nullptr, H, 128, ref);
    td::Tensor b = td::Tensor::empty({2 * L - 1}, td::DType::I32);
    for (int r = -(L - 1); r <= L - 1; r++) b.ptr<int32_t>()[r + L - 1] = td::cpu::t5_relative_bucket(r, 32, 128, true);
    td::Tensor m = td::Tensor::empty({L}, td::DType::I32);
    for (int i = 0; i < L; i++) m.ptr<int32_t>()[i] = mask[size_t(i)];
    td::Tensor md = m.to(td::Device::CUDA);
    td::Tensor o = td::Tensor::empty({L, A}, td::DType::BF16, td::Device::CUDA);
    td::cuda::t5_attention(qkv.to(td::DType::BF16).to(td::Device::CUDA), pos.to(td::Device::CUDA),
                           b.to(td::Device::CUDA), c.mask ? &md : nullptr, H, o);
    td::Tensor oh = o.to(td::Device::CPU).to(td::DType::F32);
    double worst = 0;
    for (int64_t i = 0; i < oh.numel(); i++) {
      ASSERT_TRUE(std::isfinite(oh.ptr<float>()[i])) << "Dh " << Dh << " L " << L << " element " << i;
      worst = std::max(worst, double(std::fabs(oh.ptr<float>()[i] - ref.ptr<float>()[i])));
    }
    EXPECT_LT(td::test::nmse(oh, ref), 1e-4) << "Dh " << Dh << " L " << L << " mask " << c.mask << " worst " << worst;
  }
}

TEST(T5Cuda, QuantizeMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  td::Tensor w = td::test::randn({64, 256}, 9).to(td::DType::BF16);
  auto ref = td::cpu::t5_quantize_int8(w, 128);
  td::Tensor q = td::Tensor::empty({64, 256}, td::DType::I8, td::Device::CUDA);
  td::Tensor s = td::Tensor::empty({64, 2}, td::DType::F32, td::Device::CUDA);
  td::cuda::t5_quantize_int8(w.to(td::Device::CUDA), 128, q, s);
  td::Tensor qh = q.to(td::Device::CPU);
  int diff = 0;
  for (int64_t i = 0; i < qh.numel(); i++) diff += std::abs(int(qh.ptr<int8_t>()[i]) - int(ref.w.ptr<int8_t>()[i])) > 1;
  EXPECT_EQ(diff, 0);
  EXPECT_LT(td::test::max_abs_diff(s, ref.scales), 1e-6);
  td::Tensor wd = td::Tensor::empty({64, 256}, td::DType::BF16, td::Device::CUDA);
  td::cuda::t5_dequant_int8(q, s, 128, wd);
  EXPECT_LT(td::test::nmse(wd, w), 1e-4);
}

// The device-side gather of random-weight embeddings reproduces the host's counter-based rows.
TEST(T5Cuda, RandomEmbeddingMatchesHostHash) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t D = 96;
  std::vector<int32_t> ids = {5, 0, 256383, 17, 5};
  td::Tensor ih = td::Tensor::empty({int64_t(ids.size())}, td::DType::I32);
  for (size_t i = 0; i < ids.size(); i++) ih.ptr<int32_t>()[i] = ids[i];
  td::Tensor x = td::Tensor::empty({int64_t(ids.size()), D}, td::DType::F32, td::Device::CUDA);
  td::cuda::t5_embed_random(ih.to(td::Device::CUDA), 1234, std::sqrt(3.f), x);
  td::Tensor xh = x.to(td::Device::CPU);
  double worst = 0;
  for (size_t i = 0; i < ids.size(); i++)
    for (int64_t j = 0; j < D; j++)
      worst = std::max(worst, double(std::fabs(xh.ptr<float>()[int64_t(i) * D + j] -
                                               td::t5_hash_uniform(1234, uint64_t(ids[i]) * uint64_t(D) + uint64_t(j),
                                                                   std::sqrt(3.f)))));
  EXPECT_LT(worst, 1e-6);
}

TEST(T5Cuda, RandomXxlShapedLayerRuns) {
  TD_SKIP_WITHOUT_CUDA();
  td::T5Config c;  // XXL widths, two layers: exercises the real GEMM shapes and the 512-token attention
  c.num_layers = 2;
  td::T5Options gpu;
  gpu.device = td::Device::CUDA;
  auto enc = td::T5Encoder::random(c, gpu, 3);
  td::Tensor out = enc->encode(some_ids(512));
  ASSERT_EQ(out.shape(), td::Shape({512, 4096}));
  for (int64_t i = 0; i < out.numel(); i += 97) ASSERT_TRUE(std::isfinite(out.ptr<float>()[i]));
}

}  // namespace
