// CPU tests of sparse-linear attention: the block map, the sparse branch against a masked dense softmax, the linear
// branch against its formula, the SageSLA emulation's error level, and the op dispatch. Small shapes (CI, 2 cores).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <vector>

#include "core/error.h"
#include "cpu/sla_attention.h"
#include "ops/ops.h"
#include "ops/sla.h"
#include "test_util.h"

namespace td {
namespace {

// q/k shaped like real ones: a per-(head, channel) offset shared by all tokens (what smooth-K removes) plus noise,
// and a slow drift along the sequence so that some key blocks matter more than others.
struct Qkv {
  Tensor q, k, v;
};
Qkv make_qkv(int64_t L, int64_t H, int64_t D, uint64_t seed) {
  Qkv r{test::randn({L, H, D}, seed), test::randn({L, H, D}, seed + 1), test::randn({L, H, D}, seed + 2)};
  Tensor off = test::randn({2, H, D}, seed + 3, 1.5f);
  for (int64_t t = 0; t < L; t++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t d = 0; d < D; d++) {
        const float drift = std::sin(0.05f * float(t) + 0.3f * float(d + h));
        r.q.ptr<float>()[(t * H + h) * D + d] += off.ptr<float>()[h * D + d] + drift;
        r.k.ptr<float>()[(t * H + h) * D + d] += off.ptr<float>()[(H + h) * D + d] + drift;
      }
  return r;
}

// Dense softmax attention with a block mask (mask == nullptr: dense), double precision.
Tensor masked_dense(const Qkv& x, const Tensor* table, int bq, int bk, float scale) {
  const int64_t L = x.q.size(0), H = x.q.size(1), D = x.q.size(2);
  Tensor o = Tensor::zeros({L, H, D}, DType::F32);
  for (int64_t h = 0; h < H; h++)
    for (int64_t i = 0; i < L; i++) {
      std::set<int> allowed;
      if (table) {
        const int64_t kc = table->size(2), qb = i / bq, nq = table->size(1);
        for (int64_t c = 0; c < kc; c++) allowed.insert(table->ptr<int32_t>()[(h * nq + qb) * kc + c]);
      }
      std::vector<double> s(L, -INFINITY);
      double m = -INFINITY;
      for (int64_t j = 0; j < L; j++) {
        if (table && !allowed.count(int(j / bk))) continue;
        double a = 0;
        for (int64_t d = 0; d < D; d++)
          a += double(x.q.ptr<float>()[(i * H + h) * D + d]) * x.k.ptr<float>()[(j * H + h) * D + d];
        s[j] = a * scale;
        m = std::max(m, s[j]);
      }
      double l = 0;
      std::vector<double> acc(D, 0.0);
      for (int64_t j = 0; j < L; j++) {
        if (s[j] == -INFINITY) continue;
        double p = std::exp(s[j] - m);
        l += p;
        for (int64_t d = 0; d < D; d++) acc[d] += p * x.v.ptr<float>()[(j * H + h) * D + d];
      }
      for (int64_t d = 0; d < D; d++) o.ptr<float>()[(i * H + h) * D + d] = float(acc[d] / l);
    }
  return o;
}

TEST(Sla, TopkCount) {
  EXPECT_EQ(cpu::sla_topk_count(0.1f, 512), 51);
  EXPECT_EQ(cpu::sla_topk_count(0.1f, 256), 25);
  EXPECT_EQ(cpu::sla_topk_count(0.1f, 1182), 118);
  EXPECT_EQ(cpu::sla_topk_count(0.1f, 591), 59);
  EXPECT_EQ(cpu::sla_topk_count(0.3f, 10), 3);
  EXPECT_EQ(cpu::sla_topk_count(0.1f, 5), 1);  // at least one block
  EXPECT_EQ(cpu::sla_topk_count(1.0f, 7), 7);
  EXPECT_THROW(cpu::sla_topk_count(0.f, 7), Error);
  EXPECT_THROW(cpu::sla_topk_count(1.5f, 7), Error);
}

// The map against a direct transcription of get_block_map, including a partial last block on both sides.
TEST(Sla, BlockMapMatchesDefinition) {
  const int64_t L = 333, H = 2, D = 16;
  const int bq = 32, bk = 16;
  Qkv x = make_qkv(L, H, D, 11);
  Tensor scores;
  Tensor table = cpu::sla_block_map(x.q, x.k, bq, bk, 0.25f, &scores);
  const int64_t nq = (L + bq - 1) / bq, nk = (L + bk - 1) / bk, kc = cpu::sla_topk_count(0.25f, int(nk));
  ASSERT_EQ(table.shape(), (Shape{H, nq, kc}));
  for (int64_t h = 0; h < H; h++) {
    std::vector<double> km(D, 0.0);
    for (int64_t t = 0; t < L; t++)
      for (int64_t d = 0; d < D; d++) km[d] += x.k.ptr<float>()[(t * H + h) * D + d] / double(L);
    for (int64_t i = 0; i < nq; i++) {
      std::vector<double> pq(D, 0.0);
      const int64_t q0 = i * bq, q1 = std::min<int64_t>(L, q0 + bq);
      for (int64_t t = q0; t < q1; t++)
        for (int64_t d = 0; d < D; d++) pq[d] += x.q.ptr<float>()[(t * H + h) * D + d] / double(q1 - q0);
      std::vector<std::pair<double, int>> s;
      for (int64_t j = 0; j < nk; j++) {
        const int64_t k0 = j * bk, k1 = std::min<int64_t>(L, k0 + bk);
        double dot = 0;
        for (int64_t d = 0; d < D; d++) {
          double pk = 0;
          for (int64_t t = k0; t < k1; t++) pk += x.k.ptr<float>()[(t * H + h) * D + d] - km[d];
          dot += pq[d] * pk / double(k1 - k0);
        }
        EXPECT_NEAR(dot, scores.ptr<float>()[(h * nq + i) * nk + j], 1e-4 * (1 + std::fabs(dot)));
        s.push_back({-dot, int(j)});
      }
      std::sort(s.begin(), s.end());
      std::vector<int> want;
      for (int64_t c = 0; c < kc; c++) want.push_back(s[c].second);
      std::sort(want.begin(), want.end());
      std::vector<int> got(table.ptr<int32_t>() + (h * nq + i) * kc, table.ptr<int32_t>() + (h * nq + i + 1) * kc);
      EXPECT_EQ(got, want) << "head " << h << " query block " << i;
    }
  }
}

// All-equal scores: the lower block indices win (the documented tie rule).
TEST(Sla, BlockMapTiesPickLowerIndex) {
  const int64_t L = 256, H = 1, D = 8;
  Tensor q = Tensor::zeros({L, H, D}, DType::F32), k = Tensor::zeros({L, H, D}, DType::F32);
  Tensor table = cpu::sla_block_map(q, k, 64, 32, 0.25f);  // 8 key blocks, keep 2
  ASSERT_EQ(table.size(2), 2);
  for (int64_t i = 0; i < table.size(1); i++) {
    EXPECT_EQ(table.ptr<int32_t>()[i * 2], 0);
    EXPECT_EQ(table.ptr<int32_t>()[i * 2 + 1], 1);
  }
}

TEST(Sla, SparseBranchMatchesMaskedDense) {
  for (int64_t D : {64, 128}) {
    const int64_t L = 301, H = 2;
    const int bq = 128, bk = 64;
    Qkv x = make_qkv(L, H, D, 21 + D);
    const float scale = 1.f / std::sqrt(float(D));
    Tensor table = cpu::sla_block_map(x.q, x.k, bq, bk, 0.4f);
    Tensor o = Tensor::empty({L, H, D}, DType::F32);
    cpu::sla_sparse(x.q, x.k, x.v, table, bq, bk, scale, o);
    Tensor ref = masked_dense(x, &table, bq, bk, scale);
    const double e = test::rel_l2(o, ref);
    std::printf("[sla] D=%lld sparse branch vs masked dense: rel L2 %.3g\n", (long long)D, e);
    EXPECT_LT(e, 1e-5);
  }
}

TEST(Sla, LinearBranchMatchesFormula) {
  const int64_t L = 77, H = 3, D = 64;
  Qkv x = make_qkv(L, H, D, 31);
  Tensor w = test::randn({D, D}, 32, 0.1f), b = test::randn({D}, 33, 0.1f);
  Tensor o = Tensor::zeros({L, H, D}, DType::F32);
  cpu::sla_linear_add(x.q, x.k, x.v, &w, &b, o);
  auto phi = [&](const Tensor& t, int64_t i, int64_t h) {
    std::vector<double> r(D);
    double m = -1e30, s = 0;
    for (int64_t d = 0; d < D; d++) m = std::max(m, double(t.ptr<float>()[(i * H + h) * D + d]));
    for (int64_t d = 0; d < D; d++) s += (r[d] = std::exp(t.ptr<float>()[(i * H + h) * D + d] - m));
    for (auto& y : r) y /= s;
    return r;
  };
  double err = 0, ref2 = 0;
  for (int64_t h = 0; h < H; h++)
    for (int64_t i = 0; i < L; i++) {
      std::vector<double> pq = phi(x.q, i, h), num(D, 0.0);
      double den = 1e-5;
      for (int64_t j = 0; j < L; j++) {
        std::vector<double> pk = phi(x.k, j, h);
        double dot = 0;
        for (int64_t d = 0; d < D; d++) dot += pq[d] * pk[d];
        den += dot;
        for (int64_t d = 0; d < D; d++) num[d] += dot * x.v.ptr<float>()[(j * H + h) * D + d];
      }
      for (int64_t n = 0; n < D; n++) {
        double y = b.ptr<float>()[n];
        for (int64_t d = 0; d < D; d++) y += w.ptr<float>()[n * D + d] * num[d] / den;
        const double got = o.ptr<float>()[(i * H + h) * D + n];
        err += (got - y) * (got - y);
        ref2 += y * y;
      }
    }
  const double e = std::sqrt(err / ref2);
  std::printf("[sla] linear branch vs formula: rel L2 %.3g\n", e);
  EXPECT_LT(e, 1e-5);
}

// The quantized emulation stays close to fp32, for odd lengths and both head dims; numbers are printed because the
// GPU tests bound the kernels' error by twice these.
TEST(Sla, SageEmulationErrorLevel) {
  for (int64_t D : {64, 128})
    for (int64_t L : {200, 517}) {
      const int64_t H = 2;
      Qkv x = make_qkv(L, H, D, 41 + L + D);
      const float scale = 1.f / std::sqrt(float(D));
      for (auto [bq, bk] : {std::pair<int, int>{128, 64}, {64, 128}}) {
        Tensor table = cpu::sla_block_map(x.q, x.k, bq, bk, 0.3f);
        Tensor ref = Tensor::empty({L, H, D}, DType::F32), emu = Tensor::empty({L, H, D}, DType::F32);
        cpu::sla_sparse(x.q, x.k, x.v, table, bq, bk, scale, ref);
        cpu::sagesla_sparse_emulated(x.q, x.k, x.v, table, bq, bk, scale, emu);
        const double e = test::rel_l2(emu, ref);
        std::printf("[sla] L=%lld D=%lld %dx%d sagesla emulation vs fp32 sparse: rel L2 %.4f\n", (long long)L,
                    (long long)D, bq, bk, e);
        EXPECT_LT(e, 0.05);
        EXPECT_GT(e, 1e-4);  // it does quantize
      }
    }
}

// topk 1.0 with a zero proj_l (as an untrained SLA module): every mode reduces to dense attention.
TEST(Sla, FullTopkApproachesDense) {
  const int64_t L = 190, H = 2, D = 64;
  Qkv x = make_qkv(L, H, D, 51);
  Tensor w = Tensor::zeros({D, D}, DType::F32), b = Tensor::zeros({D}, DType::F32);
  Tensor dense = masked_dense(x, nullptr, 1, 1, 1.f / 8.f);
  for (AttentionMode mode : {AttentionMode::SLA, AttentionMode::SageSLA}) {
    AttentionOptions opts;
    opts.mode = mode;
    opts.topk = 1.0f;
    opts.proj_l_weight = &w;
    opts.proj_l_bias = &b;
    Tensor o = Tensor::empty({L, H, D}, DType::F32);
    ops::sla_attention(x.q, x.k, x.v, o, opts);
    const double e = test::rel_l2(o, dense);
    std::printf("[sla] topk 1.0 %s vs dense: rel L2 %.4g\n", attention_mode_name(mode), e);
    EXPECT_LT(e, mode == AttentionMode::SLA ? 1e-5 : 0.05);
  }
}

// Whole op = sparse + projected linear branch.
TEST(Sla, OpIsSparsePlusLinear) {
  const int64_t L = 150, H = 2, D = 64;
  Qkv x = make_qkv(L, H, D, 61);
  Tensor w = test::randn({D, D}, 62, 0.05f), b = test::randn({D}, 63, 0.05f);
  AttentionOptions opts;
  opts.mode = AttentionMode::SLA;
  opts.topk = 0.5f;
  opts.proj_l_weight = &w;
  opts.proj_l_bias = &b;
  Tensor o = Tensor::empty({L, H, D}, DType::F32);
  ops::sla_attention(x.q, x.k, x.v, o, opts);
  Tensor table = cpu::sla_block_map(x.q, x.k, 128, 64, 0.5f);
  Tensor ref = masked_dense(x, &table, 128, 64, 1.f / 8.f);
  cpu::sla_linear_add(x.q, x.k, x.v, &w, &b, ref);
  EXPECT_LT(test::rel_l2(o, ref), 1e-5);
}

TEST(Sla, BadInputsRaise) {
  Tensor q = test::randn({10, 2, 8}, 1), k = test::randn({11, 2, 8}, 2);
  Tensor o = Tensor::empty({10, 2, 8}, DType::F32);
  AttentionOptions opts;
  opts.mode = AttentionMode::SLA;
  EXPECT_THROW(ops::sla_attention(q, k, q, o, opts), Error);
  opts.topk = 0.f;
  EXPECT_THROW(ops::sla_attention(q, q, q, o, opts), Error);
  opts.topk = 0.1f;
  Tensor w = Tensor::zeros({4, 4}, DType::F32);
  opts.proj_l_weight = &w;
  EXPECT_THROW(ops::sla_attention(q, q, q, o, opts), Error);
  opts.proj_l_weight = nullptr;
  opts.mode = AttentionMode::Dense;
  EXPECT_THROW(ops::sla_attention(q, q, q, o, opts), Error);
}

}  // namespace
}  // namespace td
