#include <cstdio>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace td {
namespace {

TEST(DType, Bf16RoundTripAndRounding) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, F16MatchesKnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  for (float v : {0.1f, -3.75f, 1000.5f, 6e-5f, 3e-7f}) EXPECT_NEAR(f16_to_f32(f32_to_f16(v)), v, std::fabs(v) * 1e-3 + 6e-8);
}

TEST(DType, F8E4M3Exhaustive) {
  // Every finite code decodes and re-encodes to itself.
  for (int c = 0; c < 256; c++) {
    float f = f8e4m3_to_f32(uint8_t(c));
    if (std::isnan(f)) continue;
    uint8_t back = f32_to_f8e4m3(f);
    if (f == 0.0f) {
      EXPECT_EQ(back & 0x7f, 0);
    } else {
      EXPECT_EQ(back, c) << "code " << c << " value " << f;
    }
  }
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

TEST(Tensor, ViewsAndCopies) {
  Tensor t = test::randn({3, 4, 5}, 1);
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{5, 3, 4}));
  EXPECT_FALSE(p.is_contiguous());
  Tensor c = p.contiguous();
  EXPECT_EQ(c.ptr<float>()[1 * 12 + 2 * 4 + 3], t.ptr<float>()[2 * 20 + 3 * 5 + 1]);
  Tensor s = t.slice(1, 1, 3).select(0, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 5}));
  EXPECT_EQ(s.contiguous().ptr<float>()[5 + 4], t.ptr<float>()[2 * 20 + 2 * 5 + 4]);
  EXPECT_THROW(t.view({7, 7}), Error);
  Tensor b = t.to(DType::BF16).to(DType::F32);
  EXPECT_LT(test::nmse(b, t), 1e-5);
}

TEST(Threads, ParallelForCoversRangeOnce) {
  std::vector<int> hits(1000, 0);
  parallel_for(1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) hits[i]++;
  });
  for (int h : hits) ASSERT_EQ(h, 1);
  EXPECT_THROW(parallel_for(100, [](int64_t, int64_t) { throw Error("x", "boom"); }), Error);
}

TEST(Safetensors, RoundTripAllDtypes) {
  std::string path = ::testing::TempDir() + "/rt.safetensors";
  Tensor a = test::randn({2, 3}, 7);
  Tensor b = a.to(DType::BF16);
  Tensor c = test::randint8({5}, 3);
  Tensor d = a.to(DType::F16);
  save_safetensors(path, {{"a", a}, {"b.weight", b}, {"c", c}, {"d", d}}, {{"format", "pt"}});
  TensorMap m = load_safetensors(path);
  EXPECT_EQ(m.size(), 4u);
  EXPECT_EQ(m.metadata.at("format"), "pt");
  EXPECT_EQ(test::max_abs_diff(m.get("a"), a), 0.0);
  EXPECT_EQ(m.get("b.weight").dtype(), DType::BF16);
  EXPECT_EQ(std::memcmp(m.get("c").data(), c.data(), 5), 0);
  EXPECT_EQ(test::max_abs_diff(m.get("d"), d), 0.0);
  EXPECT_THROW(m.get("missing"), Error);
}

TEST(Safetensors, CorruptHeadersAreRejected) {
  auto parse = [](const std::string& header, size_t data_bytes) {
    std::vector<unsigned char> buf(8 + header.size() + data_bytes, 0);
    uint64_t n = header.size();
    for (int i = 0; i < 8; i++) buf[i] = uint8_t(n >> (8 * i));
    std::memcpy(buf.data() + 8, header.data(), header.size());
    return parse_safetensors_header(buf.data(), buf.size(), "x.safetensors");
  };
  EXPECT_NO_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), Error);   // truncated
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), Error);   // size mismatch
  EXPECT_THROW(parse(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8), Error);    // dtype
  EXPECT_THROW(parse(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), Error);  // negative
  EXPECT_THROW(parse(R"({"a": [1,2]})", 8), Error);
  EXPECT_THROW(parse("{not json", 8), Error);
  std::vector<unsigned char> tiny = {1, 2, 3};
  EXPECT_THROW(parse_safetensors_header(tiny.data(), tiny.size(), "t"), Error);
  std::vector<unsigned char> huge(16, 0xff);  // header length way past the file
  EXPECT_THROW(parse_safetensors_header(huge.data(), huge.size(), "h"), Error);
}

}  // namespace
}  // namespace td
