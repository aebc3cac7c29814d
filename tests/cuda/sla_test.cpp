// GPU tests of SLA / SageSLA against the CPU fp32 reference and the CPU SageSLA emulation. Small and medium shapes
// by default; TD_SLA_LARGE=1 adds L = 32760 (slow: the CPU reference runs on the host).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "cpu/sla_attention.h"
#include "cuda/cuda_common.cuh"
#include "cuda/sla_attention.h"
#include "ops/ops.h"
#include "ops/sla.h"
#include "ops/w8a8.h"
#include "test_util.h"

namespace td {
namespace {

struct Case {
  Tensor q, k, v;     // host f32, already rounded to bf16 values
  Tensor dq, dk, dv;  // device bf16
};

// Inputs shaped like real ones: per-(head, channel) offsets on q and k (what smooth-K removes) and a slow drift
// along the sequence, so that block scores are far from uniform.
Case make_case(int64_t L, int64_t H, int64_t D, uint64_t seed) {
  Tensor q = test::randn({L, H, D}, seed), k = test::randn({L, H, D}, seed + 1), v = test::randn({L, H, D}, seed + 2);
  Tensor off = test::randn({2, H, D}, seed + 3, 1.5f);
  for (int64_t t = 0; t < L; t++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t d = 0; d < D; d++) {
        const float drift = std::sin(0.05f * float(t) + 0.3f * float(d + h));
        q.ptr<float>()[(t * H + h) * D + d] += off.ptr<float>()[h * D + d] + drift;
        k.ptr<float>()[(t * H + h) * D + d] += off.ptr<float>()[(H + h) * D + d] + drift;
      }
  Case c;
  for (auto [src, host, dev] : {std::tuple<Tensor*, Tensor*, Tensor*>{&q, &c.q, &c.dq}, {&k, &c.k, &c.dk},
                                {&v, &c.v, &c.dv}}) {
    Tensor b = src->to(DType::BF16);
    *host = b.to(DType::F32);
    *dev = b.to(Device::CUDA);
  }
  return c;
}

struct Geo {
  int bq, bk;
};
const Geo kGeos[] = {{128, 64}, {64, 128}};

bool large() {
  const char* e = std::getenv("TD_SLA_LARGE");
  return e && e[0] == '1';
}

// Rows of a GPU table that differ from the CPU's (*rows_diff) and, of those, the blocks that are not near-ties: every
// block in the symmetric difference must score within 1e-4 (relative) of the row's kc-th best CPU score, since the
// two sum pooled values in different orders. Also checks that GPU rows ascend.
int64_t block_map_mismatches(const Tensor& ref, const Tensor& got, const Tensor& scores, int64_t* rows_diff) {
  EXPECT_EQ(got.shape(), ref.shape());
  const int64_t rows = ref.size(0) * ref.size(1), kc = ref.size(2), nk = scores.size(2);
  int64_t bad = 0;
  *rows_diff = 0;
  for (int64_t r = 0; r < rows; r++) {
    const int32_t* a = ref.ptr<int32_t>() + r * kc;
    const int32_t* b = got.ptr<int32_t>() + r * kc;
    for (int64_t x = 1; x < kc; x++) EXPECT_LT(b[x - 1], b[x]) << "GPU row not ascending";
    if (std::equal(a, a + kc, b)) continue;
    (*rows_diff)++;
    std::vector<float> s(scores.ptr<float>() + r * nk, scores.ptr<float>() + (r + 1) * nk);
    std::vector<float> sorted = s;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float kth = sorted[kc - 1];
    const float tol = 1e-4f * (1.f + std::fabs(kth));
    std::vector<int32_t> sa(a, a + kc), sb(b, b + kc), diff;
    std::set_symmetric_difference(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(diff));
    for (int32_t j : diff)
      if (std::fabs(s[j] - kth) > tol) bad++;
  }
  return bad;
}

// The table the whole op computed (with the linear branch on; sagesla pools k in kquant, sla in a pooling pass).
Tensor op_table(const Tensor& dq, const Tensor& dk, const Tensor& dv, bool quantized, const Geo& geo, float topk) {
  cuda::SlaParams p;
  p.quantized = quantized;
  p.bq = geo.bq;
  p.bk = geo.bk;
  p.topk = topk;
  Tensor o = Tensor::empty(dq.shape(), DType::BF16, Device::CUDA), t;
  p.table_out = &t;
  cuda::sla_attention(dq, dk, dv, o, p);
  EXPECT_TRUE(t.defined());
  return t.to(Device::CPU);
}

// GPU and CPU tables agree except for near-ties: the block map alone, and the map inside the whole op (sla and
// sagesla, which pool k in their own passes).
TEST(SlaCuda, BlockMapMatchesCpu) {
  TD_SKIP_WITHOUT_CUDA();
  std::vector<int64_t> lens = {1000, 4096};
  if (large()) lens.push_back(32760);
  for (int64_t L : lens)
    for (int64_t D : {64, 128})
      for (const Geo& geo : kGeos) {
        const int64_t H = 3;
        Case c = make_case(L, H, D, 100 + L + D);
        Tensor scores;
        Tensor ref = cpu::sla_block_map(c.q, c.k, geo.bq, geo.bk, 0.1f, &scores);
        const std::pair<const char*, Tensor> gots[] = {
            {"map alone", cuda::sla_block_map(c.dq, c.dk, geo.bq, geo.bk, 0.1f).to(Device::CPU)},
            {"sla op", op_table(c.dq, c.dk, c.dv, false, geo, 0.1f)},
            {"sagesla op", op_table(c.dq, c.dk, c.dv, true, geo, 0.1f)}};
        for (const auto& [what, got] : gots) {
          int64_t rows_diff = 0;
          const int64_t bad = block_map_mismatches(ref, got, scores, &rows_diff);
          std::printf("[sla-cuda] block map (%s) L=%lld D=%lld %dx%d: %lld of %lld rows differ (near-ties), %lld bad\n",
                      what, (long long)L, (long long)D, geo.bq, geo.bk, (long long)rows_diff,
                      (long long)(ref.size(0) * ref.size(1)), (long long)bad);
          EXPECT_EQ(bad, 0) << what;
        }
      }
}

// Long rows with exact ties (the top-k kernel's radix select and its tie rule): keys repeat three 128-token
// patterns, so every block score occurs ~nk/3 (or nk/6) times and the kept set is decided by the lower-index rule.
// Identical blocks pool and score identically on both sides, so the tables must match exactly.
TEST(SlaCuda, BlockMapTiesMatchCpuExactly) {
  TD_SKIP_WITHOUT_CUDA();
  // 300 key blocks of 128 tokens (the warp-per-row top-k), and 2100 blocks of 64 tokens (past its 2048-block limit:
  // the CTA-per-row top-k).
  for (const int64_t L : {int64_t(128) * 300, int64_t(64) * 2100}) {
    const int64_t H = L > 128 * 300 ? 1 : 2, D = 64;
    Tensor q = test::randn({L, H, D}, 71), base = test::randn({3 * 128, H, D}, 72);
    Tensor k = Tensor::empty({L, H, D}, DType::F32);
    for (int64_t t = 0; t < L; t++) {
      const int64_t src = ((t / 128) % 3) * 128 + t % 128;
      std::copy(base.ptr<float>() + src * H * D, base.ptr<float>() + (src + 1) * H * D, k.ptr<float>() + t * H * D);
    }
    Tensor qb = q.to(DType::BF16).to(DType::F32), kb = k.to(DType::BF16).to(DType::F32);
    Tensor dq = q.to(DType::BF16).to(Device::CUDA), dk = k.to(DType::BF16).to(Device::CUDA);
    Tensor dv = test::randn({L, H, D}, 73).to(DType::BF16).to(Device::CUDA);
    for (const Geo& geo : kGeos)
      for (float topk : {0.1f, 0.15f, 1.f}) {
        Tensor ref = cpu::sla_block_map(qb, kb, geo.bq, geo.bk, topk);
        // The map alone, and inside the op (its own pooling passes) where that is cheap to run.
        std::vector<std::pair<const char*, Tensor>> gots;
        gots.push_back({"map alone", cuda::sla_block_map(dq, dk, geo.bq, geo.bk, topk).to(Device::CPU)});
        if (topk < 1.f) {
          gots.push_back({"sla op", op_table(dq, dk, dv, false, geo, topk)});
          gots.push_back({"sagesla op", op_table(dq, dk, dv, true, geo, topk)});
        }
        for (const auto& [what, got] : gots) {
          ASSERT_EQ(got.shape(), ref.shape());
          int64_t rows_diff = 0;
          const int64_t rows = ref.size(0) * ref.size(1), kc = ref.size(2);
          for (int64_t r = 0; r < rows; r++)
            if (!std::equal(ref.ptr<int32_t>() + r * kc, ref.ptr<int32_t>() + (r + 1) * kc,
                            got.ptr<int32_t>() + r * kc))
              rows_diff++;
          std::printf("[sla-cuda] tied block map (%s) L=%lld %dx%d topk %.2f kc %lld: %lld of %lld rows differ\n",
                      what, (long long)L, geo.bq, geo.bk, topk, (long long)kc, (long long)rows_diff,
                      (long long)rows);
          EXPECT_EQ(rows_diff, 0) << what;
        }
      }
  }
}

// The sparse branch alone on a fixed (CPU) map: SLA ~ fp32 up to bf16 rounding; SageSLA within 2x of the
// emulation's error plus rounding, and close to the emulation itself.
TEST(SlaCuda, SparseBranchFixedMap) {
  TD_SKIP_WITHOUT_CUDA();
  for (int64_t L : {777, 4096})
    for (int64_t D : {64, 128})
      for (const Geo& geo : kGeos) {
        const int64_t H = 2;
        Case c = make_case(L, H, D, 200 + L + D);
        const float scale = 1.f / std::sqrt(float(D));
        Tensor table = cpu::sla_block_map(c.q, c.k, geo.bq, geo.bk, 0.15f);
        Tensor dtable = table.to(Device::CUDA);
        Tensor ref = Tensor::empty({L, H, D}, DType::F32), emu = Tensor::empty({L, H, D}, DType::F32);
        cpu::sla_sparse(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, ref);
        cpu::sagesla_sparse_emulated(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, emu);
        const double e_emu = test::rel_l2(emu, ref);
        for (bool quant : {false, true}) {
          cuda::SlaParams p;
          p.quantized = quant;
          p.bq = geo.bq;
          p.bk = geo.bk;
          p.table = &dtable;
          p.sparse_only = true;
          Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
          cuda::sla_attention(c.dq, c.dk, c.dv, o, p);
          const double e = test::rel_l2(o, ref);
          std::printf("[sla-cuda] sparse L=%lld D=%lld %dx%d %s: rel L2 vs fp32 %.4f (emulation %.4f)", (long long)L,
                      (long long)D, geo.bq, geo.bk, quant ? "sagesla" : "sla", e, e_emu);
          if (quant) {
            const double e2 = test::rel_l2(o, emu);
            std::printf(", vs emulation %.4f\n", e2);
            EXPECT_LT(e, 2 * e_emu + 0.01);
            EXPECT_LT(e2, 0.02);
          } else {
            std::printf("\n");
            EXPECT_LT(e, 0.01);
          }
        }
      }
}

// Smallest shapes first (one or two blocks, partial ones), so that a fragment-layout bug shows up with a readable
// location: prints the worst element.
TEST(SlaCuda, TinyShapesSparseOnly) {
  TD_SKIP_WITHOUT_CUDA();
  for (int64_t L : {64, 130, 200})
    for (int64_t D : {64, 128})
      for (const Geo& geo : kGeos)
        for (bool quant : {false, true}) {
          const int64_t H = 1;
          Case c = make_case(L, H, D, 500 + L + D);
          const float scale = 1.f / std::sqrt(float(D));
          Tensor table = cpu::sla_block_map(c.q, c.k, geo.bq, geo.bk, 1.0f);
          Tensor dtable = table.to(Device::CUDA);
          Tensor ref = Tensor::empty({L, H, D}, DType::F32);
          if (quant)
            cpu::sagesla_sparse_emulated(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, ref);
          else
            cpu::sla_sparse(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, ref);
          cuda::SlaParams p;
          p.quantized = quant;
          p.bq = geo.bq;
          p.bk = geo.bk;
          p.table = &dtable;
          p.sparse_only = true;
          Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
          cuda::sla_attention(c.dq, c.dk, c.dv, o, p);
          Tensor got = o.to_f32_host();
          int64_t worst = 0;
          double wd = -1;
          for (int64_t x = 0; x < ref.numel(); x++) {
            const double d = std::fabs(double(got.ptr<float>()[x]) - ref.ptr<float>()[x]);
            if (!(d <= wd)) {
              wd = d;
              worst = x;
            }
          }
          const double e = test::rel_l2(got, ref);
          std::printf("[sla-cuda] tiny L=%lld D=%lld %dx%d %s vs %s: rel L2 %.4f, worst at token %lld dim %lld: "
                      "%.4f vs %.4f\n",
                      (long long)L, (long long)D, geo.bq, geo.bk, quant ? "sagesla" : "sla",
                      quant ? "emulation" : "fp32", e, (long long)(worst / D), (long long)(worst % D),
                      got.ptr<float>()[worst], ref.ptr<float>()[worst]);
          EXPECT_LT(e, quant ? 0.02 : 0.01);
        }
}

// The Hopper wgmma kernels (in-loop: sagesla, Dh 128, 64x128 and 128x64; pipelined and compact: 64x128) against the
// mma.sync kernel and the emulation. All quantize identically, so they differ only by accumulation order.
TEST(SlaCuda, WgmmaMatchesMmaSync) {
  TD_SKIP_WITHOUT_CUDA();
  const bool sm90 = cuda::cc() == 90;
  if (!sm90) GTEST_SKIP() << "wgmma kernel needs sm_90";
  for (const Geo& geo : kGeos)
    for (int64_t L : {130, 1000, 2048, 4096}) {  // 64x128 at top-k 0.15: 1, 1, 2 and 4 key blocks per row
      const int64_t H = 2, D = 128;
      Case c = make_case(L, H, D, 600 + L);
      Tensor w = test::randn({D, D}, 9, 0.05f), b = test::randn({D}, 10, 0.05f);
      Tensor dw = w.to(Device::CUDA), db = b.to(Device::CUDA);
      Tensor table = cpu::sla_block_map(c.q, c.k, geo.bq, geo.bk, 0.15f);
      Tensor dtable = table.to(Device::CUDA);
      Tensor emu = Tensor::empty({L, H, D}, DType::F32);
      cpu::sagesla_sparse_emulated(c.q, c.k, c.v, table, geo.bq, geo.bk, 1.f / std::sqrt(float(D)), emu);
      const bool pipelined = geo.bq == 64 && geo.bk == 128;
      for (bool sparse_only : {true, false}) {
        Tensor outs[4];
        for (int kernel = 1; kernel <= (pipelined ? 4 : 2); kernel++) {
          cuda::SlaParams p;
          p.quantized = true;
          p.bq = geo.bq;
          p.bk = geo.bk;
          p.table = &dtable;
          p.sparse_only = sparse_only;
          p.proj_w = &dw;
          p.proj_b = &db;
          p.kernel = kernel;
          Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
          cuda::sla_attention(c.dq, c.dk, c.dv, o, p);
          outs[kernel - 1] = o.to_f32_host();
        }
        const double e = test::rel_l2(outs[1], outs[0]);
        std::printf("[sla-cuda] wgmma vs mma.sync %dx%d L=%lld %s: rel L2 %.5f", geo.bq, geo.bk, (long long)L,
                    sparse_only ? "sparse only" : "with linear", e);
        EXPECT_LT(e, 0.005);
        if (pipelined) {
          const double ep = test::rel_l2(outs[2], outs[0]), ec = test::rel_l2(outs[3], outs[0]);
          std::printf(", pipelined / compact vs mma.sync %.5f / %.5f", ep, ec);
          EXPECT_LT(ep, 0.005);
          EXPECT_LT(ec, 0.005);
        }
        if (sparse_only) {
          const double e2 = test::rel_l2(outs[1], emu);
          std::printf(", wgmma vs emulation %.4f", e2);
          EXPECT_LT(e2, 0.02);
          if (pipelined) {
            const double e3 = test::rel_l2(outs[2], emu), e4 = test::rel_l2(outs[3], emu);
            std::printf(", pipelined / compact vs emulation %.4f / %.4f", e3, e4);
            EXPECT_LT(e3, 0.02);
            EXPECT_LT(e4, 0.02);
          }
        }
        std::printf("\n");
      }
    }
}

// The int8 output of the pipelined kernel (the o-projection's W8A8 activation) against the kernel's bf16 output.
// Two calls are not bit-identical (the linear branch's KV and the K mean are fp32 atomic sums, and a different last
// bit of the mean can move an int8 K code, i.e. a score), so the test measures that run-to-run distance on the bf16
// output first and allows the int8 output that distance plus its quantization error (a 1/128 step per group). A
// layout or scale bug in the quantizing epilogue would be off by O(1).
TEST(SlaCuda, Int8OutputMatchesQuantizedBf16) {
  TD_SKIP_WITHOUT_CUDA();
  for (int64_t L : {1000, 4096}) {
    const int64_t H = 3, D = 128;
    Case c = make_case(L, H, D, 900 + L);
    Tensor w = test::randn({D, D}, 11, 0.05f), b = test::randn({D}, 12, 0.05f);
    Tensor dw = w.to(Device::CUDA), db = b.to(Device::CUDA);
    Tensor dtable = cpu::sla_block_map(c.q, c.k, 64, 128, 0.15f).to(Device::CUDA);
    cuda::SlaParams p;
    p.quantized = true;
    p.bq = 64;
    p.bk = 128;
    p.table = &dtable;
    p.proj_w = &dw;
    p.proj_b = &db;
    if (!cuda::sla_int8_output_supported(c.dq, p)) GTEST_SKIP() << "int8 output needs a bulk-copy sm_90 kernel";
    for (int kernel : {3, 4}) {  // pipelined, compact
      p.kernel = kernel;
      Tensor o1 = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA), o2 = o1.clone();
      cuda::sla_attention(c.dq, c.dk, c.dv, o1, p);
      cuda::sla_attention(c.dq, c.dk, c.dv, o2, p);
      ops::Int8Act got;
      got.q = Tensor::empty({L, H * D}, DType::I8, Device::CUDA);
      got.scale = Tensor::empty({L, H}, DType::F32, Device::CUDA);
      cuda::sla_attention_int8(c.dq, c.dk, c.dv, got.q, got.scale, p);
      Tensor gq = got.q.to(Device::CPU), gs = got.scale.to(Device::CPU);
      Tensor deq = Tensor::empty({L, H, D}, DType::F32);
      for (int64_t i = 0; i < deq.numel(); i++)
        deq.ptr<float>()[i] = float(gq.ptr<int8_t>()[i]) * gs.ptr<float>()[i / D];
      const Tensor r1 = o1.to_f32_host(), r2 = o2.to_f32_host();
      const double run_to_run = test::rel_l2(r2, r1), e = test::rel_l2(deq, r1);
      std::printf("[sla-cuda] int8 output, kernel %d, L=%lld: rel L2 of the dequantized output vs bf16 %.5f (two bf16 "
                  "calls differ by %.5f)\n",
                  kernel, (long long)L, e, run_to_run);
      EXPECT_LT(e, run_to_run + 0.01);
      // Every group's largest code is +-127 or +-128 (the scale is amax / 128), unless the group is all zero.
      for (int64_t g = 0; g < L * H; g++) {
        int mx = 0;
        for (int64_t d = 0; d < D; d++) mx = std::max(mx, std::abs(int(gq.ptr<int8_t>()[g * D + d])));
        ASSERT_GE(mx, 127) << "kernel " << kernel << ", group " << g;
      }
    }
    // The ops entry (computed block map) allocates the activation and fills every scale.
    AttentionOptions opts;
    opts.mode = AttentionMode::SageSLA;
    opts.proj_l_weight = &dw;
    opts.proj_l_bias = &db;
    ASSERT_TRUE(ops::sla_int8_output_supported(c.dq, opts));
    ops::Int8Act via_ops;
    ops::sla_attention_int8(c.dq, c.dk, c.dv, via_ops, opts);
    ASSERT_EQ(via_ops.q.shape(), Shape({L, H * D}));
    ASSERT_EQ(via_ops.scale.shape(), Shape({L, H}));
    Tensor vs = via_ops.scale.to(Device::CPU);
    for (int64_t i = 0; i < vs.numel(); i++) ASSERT_TRUE(std::isfinite(vs.ptr<float>()[i]) && vs.ptr<float>()[i] > 0);
  }
}

// SageSLA with a computed map runs pooling, score and top-k on a side stream; with the per-stage profile it runs
// them in order on the main stream. Both must give the same output up to the run-to-run spread of the fp32 atomic
// sums (the linear branch's KV and the K mean), measured here between two calls of the side-stream path.
TEST(SlaCuda, SideStreamMatchesInOrder) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t L = 4096, H = 3, D = 128;
  Case c = make_case(L, H, D, 1300);
  Tensor w = test::randn({D, D}, 13, 0.05f), b = test::randn({D}, 14, 0.05f);
  Tensor dw = w.to(Device::CUDA), db = b.to(Device::CUDA);
  cuda::SlaParams p;
  p.quantized = true;
  cuda::sla_default_blocks(true, &p.bq, &p.bk);
  p.topk = 0.15f;
  p.proj_w = &dw;
  p.proj_b = &db;
  Tensor o1 = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA), o2 = o1.clone(), o3 = o1.clone();
  cuda::sla_attention(c.dq, c.dk, c.dv, o1, p);
  cuda::sla_attention(c.dq, c.dk, c.dv, o2, p);
  p.profile = true;
  cuda::sla_attention(c.dq, c.dk, c.dv, o3, p);
  const Tensor r1 = o1.to_f32_host(), r2 = o2.to_f32_host(), r3 = o3.to_f32_host();
  const double run_to_run = test::rel_l2(r2, r1), e = test::rel_l2(r3, r1);
  std::printf("[sla-cuda] side stream vs in order: rel L2 %.5f (two side-stream calls differ by %.5f)\n", e,
              run_to_run);
  EXPECT_LT(e, run_to_run + 2e-3);
}

// The linear branch's k/v pass on sm_90: the wgmma kernel against the mma.sync one (both modes, partial last tiles
// and CTA chunks), and its contribution (op - sparse branch alone, same table) against the CPU's linear branch. A
// large proj_l and no bias keep the linear part as large as the sparse one, so that an error in KV shows.
TEST(SlaCuda, LinearKvWgmmaMatchesMmaSync) {
  TD_SKIP_WITHOUT_CUDA();
  if (cuda::cc() != 90) GTEST_SKIP() << "the wgmma linear_kv kernel needs sm_90";
  const int64_t H = 3, D = 128;
  for (int64_t L : {1000, 4133})
    for (bool quant : {false, true}) {
      Case c = make_case(L, H, D, 1400 + L);
      Tensor w = test::randn({D, D}, 15, 1.f);
      Tensor dw = w.to(Device::CUDA);
      cuda::SlaParams p;
      p.quantized = quant;
      cuda::sla_default_blocks(quant, &p.bq, &p.bk);
      Tensor table = cpu::sla_block_map(c.q, c.k, p.bq, p.bk, 0.1f), dtable = table.to(Device::CUDA);
      p.table = &dtable;
      p.proj_w = &dw;
      Tensor o[3];
      for (int lk : {1, 2}) {
        p.linear_kernel = lk;
        o[lk] = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
        cuda::sla_attention(c.dq, c.dk, c.dv, o[lk], p);
      }
      p.sparse_only = true;
      o[0] = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
      cuda::sla_attention(c.dq, c.dk, c.dv, o[0], p);
      const Tensor sparse = o[0].to_f32_host(), mma = o[1].to_f32_host(), wg = o[2].to_f32_host();
      Tensor lin = wg.clone(), lin_ref = Tensor::zeros({L, H, D}, DType::F32);
      for (int64_t i = 0; i < lin.numel(); i++) lin.ptr<float>()[i] -= sparse.ptr<float>()[i];
      cpu::sla_linear_add(c.q, c.k, c.v, &w, nullptr, lin_ref);
      const double e_ab = test::rel_l2(wg, mma), e_lin = test::rel_l2(lin, lin_ref);
      auto l2 = [](const Tensor& t) {
        double s = 0;
        for (int64_t i = 0; i < t.numel(); i++) s += double(t.ptr<float>()[i]) * t.ptr<float>()[i];
        return std::sqrt(s);
      };
      std::printf("[sla-cuda] linear_kv L=%lld %s: wgmma vs mma.sync rel L2 %.6f; linear part vs CPU %.5f "
                  "(|linear| / |sparse| %.2f)\n",
                  (long long)L, quant ? "sagesla" : "sla", e_ab, e_lin, l2(lin_ref) / l2(sparse));
      EXPECT_LT(e_ab, 2e-3);
      EXPECT_LT(e_lin, 0.02);
    }
}

// The whole op (block map from the GPU, linear branch with a random proj_l) against the CPU reference of the same
// mode computed with the GPU's table (the map itself is checked above).
TEST(SlaCuda, FullOpMatchesReference) {
  TD_SKIP_WITHOUT_CUDA();
  std::vector<int64_t> lens = {1000, 4096};
  if (large()) lens.push_back(32760);
  for (int64_t L : lens)
    for (int64_t D : {64, 128})
      for (const Geo& geo : kGeos) {
        const int64_t H = 2;
        Case c = make_case(L, H, D, 300 + L + D);
        const float scale = 1.f / std::sqrt(float(D));
        Tensor w = test::randn({D, D}, 7, 0.05f), b = test::randn({D}, 8, 0.05f);
        Tensor dw = w.to(Device::CUDA), db = b.to(Device::CUDA);
        Tensor table = cuda::sla_block_map(c.dq, c.dk, geo.bq, geo.bk, 0.1f).to(Device::CPU);
        Tensor ref = Tensor::empty({L, H, D}, DType::F32), emu = Tensor::empty({L, H, D}, DType::F32);
        cpu::sla_sparse(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, ref);
        cpu::sagesla_sparse_emulated(c.q, c.k, c.v, table, geo.bq, geo.bk, scale, emu);
        cpu::sla_linear_add(c.q, c.k, c.v, &w, &b, ref);
        cpu::sla_linear_add(c.q, c.k, c.v, &w, &b, emu);
        const double e_emu = test::rel_l2(emu, ref);
        for (AttentionMode mode : {AttentionMode::SLA, AttentionMode::SageSLA}) {
          AttentionOptions opts;
          opts.mode = mode;
          opts.topk = 0.1f;
          opts.block_q = geo.bq;
          opts.block_k = geo.bk;
          opts.proj_l_weight = &dw;
          opts.proj_l_bias = &db;
          Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
          ops::sla_attention(c.dq, c.dk, c.dv, o, opts);
          const double e = test::rel_l2(o, ref);
          std::printf("[sla-cuda] full L=%lld D=%lld %dx%d %s: rel L2 vs fp32 %.4f (emulation %.4f)\n",
                      (long long)L, (long long)D, geo.bq, geo.bk, attention_mode_name(mode), e, e_emu);
          EXPECT_LT(e, mode == AttentionMode::SLA ? 0.01 : 2 * e_emu + 0.01);
        }
      }
}

// topk 1.0 with a zero proj_l: sagesla approaches dense attention.
TEST(SlaCuda, FullTopkApproachesDense) {
  TD_SKIP_WITHOUT_CUDA();
  const int64_t L = 1500, H = 2, D = 128;
  Case c = make_case(L, H, D, 400);
  Tensor w = Tensor::zeros({D, D}, DType::F32).to(Device::CUDA), b = Tensor::zeros({D}, DType::F32).to(Device::CUDA);
  // Dense = the sparse branch over every block.
  Tensor all = cpu::sla_block_map(c.q, c.k, 128, 64, 1.0f);
  Tensor dense = Tensor::empty({L, H, D}, DType::F32), emu = Tensor::empty({L, H, D}, DType::F32);
  cpu::sla_sparse(c.q, c.k, c.v, all, 128, 64, 1.f / std::sqrt(float(D)), dense);
  cpu::sagesla_sparse_emulated(c.q, c.k, c.v, all, 128, 64, 1.f / std::sqrt(float(D)), emu);
  const double e_emu = test::rel_l2(emu, dense);
  for (AttentionMode mode : {AttentionMode::SLA, AttentionMode::SageSLA}) {
    AttentionOptions opts;
    opts.mode = mode;
    opts.topk = 1.0f;
    opts.block_q = 128;
    opts.block_k = 64;
    opts.proj_l_weight = &w;
    opts.proj_l_bias = &b;
    Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
    ops::sla_attention(c.dq, c.dk, c.dv, o, opts);
    const double e = test::rel_l2(o, dense);
    std::printf("[sla-cuda] topk 1.0 %s vs dense: rel L2 %.4f (emulation %.4f)\n", attention_mode_name(mode), e,
                e_emu);
    EXPECT_LT(e, mode == AttentionMode::SLA ? 0.01 : 2 * e_emu + 0.01);
  }
}

TEST(SlaCuda, BadInputsRaise) {
  TD_SKIP_WITHOUT_CUDA();
  Tensor q = Tensor::zeros({100, 2, 96}, DType::BF16).to(Device::CUDA);
  Tensor o = Tensor::empty({100, 2, 96}, DType::BF16, Device::CUDA);
  AttentionOptions opts;
  opts.mode = AttentionMode::SageSLA;
  EXPECT_THROW(ops::sla_attention(q, q, q, o, opts), Error);  // head_dim 96
  Tensor q2 = Tensor::zeros({100, 2, 64}, DType::F32).to(Device::CUDA);
  Tensor o2 = Tensor::empty({100, 2, 64}, DType::BF16, Device::CUDA);
  EXPECT_THROW(ops::sla_attention(q2, q2, q2, o2, opts), Error);  // f32 on CUDA
  Tensor q3 = Tensor::zeros({100, 2, 64}, DType::BF16).to(Device::CUDA);
  opts.block_q = 32;
  EXPECT_THROW(ops::sla_attention(q3, q3, q3, o2, opts), Error);  // geometry not compiled
}

}  // namespace
}  // namespace td
