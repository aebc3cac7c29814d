// `turbodiff bench attention`: self-attention at Wan's video shapes in the three modes, dense measured in the same
// run. Prints the median ms (CUDA events, after warm-up), dense-equivalent TOPS (4·L²·H·Dh / t, the figure SLA and
// SageAttention papers quote) and effective TOPS (the work actually done: 4·L·kept_keys·H·Dh for the sparse branch
// plus 4·L·H·Dh² for the linear branch). sla/sagesla times include the block map and the linear branch.
//
//   turbodiff bench attention [--iters N] [--warmup N] [--topk 0.1,0.15] [--no-14b] [--modes dense,sla,sagesla]
//                             [--block-q N --block-k N] [--breakdown]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/threads.h"
#include "cpu/sla_attention.h"
#include "ops/ops.h"
#ifdef TD_WITH_CUDA
#include "cuda/sla_attention.h"
#endif

namespace {

using namespace td;

struct Args {
  int iters = 10, warmup = 2;
  bool no_14b = false, breakdown = false;
  std::string topks = "0.1,0.15", modes = "dense,sla,sagesla";
  int block_q = 0, block_k = 0;
};

#ifdef TD_WITH_CUDA
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

// q/k/v-like data: N(0,1)-ish noise (sum of uniforms, fast) plus a per-(head, channel) offset and a slow drift along
// the sequence, fully random per token so the block map sees no artificial ties or periodicity.
Tensor make_input(int64_t L, int64_t H, int64_t D, uint64_t seed, bool offsets) {
  Tensor h = Tensor::empty({L, H, D}, DType::BF16);
  uint16_t* p = h.ptr<uint16_t>();
  parallel_for(L, [&](int64_t t0, int64_t t1) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + uint64_t(t0) * 0xBF58476D1CE4E5B9ull + 1;
    auto next = [&]() {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      return float(s >> 40) * (1.f / 16777216.f);
    };
    for (int64_t t = t0; t < t1; t++)
      for (int64_t c = 0; c < H * D; c++) {
        float x = (next() + next() + next() - 1.5f) * 2.f;  // var 1
        if (offsets) x += std::sin(0.7f * float(c)) + 0.5f * std::sin(0.01f * float(t) + 0.1f * float(c % D));
        p[t * H * D + c] = f32_to_bf16(x);
      }
  }, 64);
  return h.to(Device::CUDA);
}

void run_shape(const Args& a, int64_t L, int64_t H, const char* label) {
  const int64_t D = 128;
  std::printf("\n%s: L = %lld, %lld heads, head_dim %lld\n", label, (long long)L, (long long)H, (long long)D);
  Tensor q = make_input(L, H, D, 1, true), k = make_input(L, H, D, 2, true), v = make_input(L, H, D, 3, false);
  Tensor o = Tensor::empty({L, H, D}, DType::BF16, Device::CUDA);
  Tensor w = Tensor::zeros({D, D}, DType::F32), b = Tensor::zeros({D}, DType::F32);
  for (int64_t i = 0; i < D * D; i++) w.ptr<float>()[i] = 0.01f * std::sin(float(i));
  Tensor dw = w.to(Device::CUDA), db = b.to(Device::CUDA);
  const double dense_flop = 4.0 * double(L) * double(L) * double(H) * double(D);
  auto print = [&](const char* mode, float topk, const bench::Timing& t, double eff_flop) {
    std::printf("  %-8s topk %-5s %9.3f ms  %8.1f TOPS dense-equiv  %8.1f TOPS effective\n", mode,
                topk > 0 ? cat(topk).c_str() : "-", t.median_ms, dense_flop / (t.median_ms * 1e9),
                eff_flop / (t.median_ms * 1e9));
  };
  const std::vector<std::string> modes = split(a.modes);
  auto want = [&](const char* m) {
    for (auto& x : modes)
      if (x == m) return true;
    return false;
  };
  for (const std::string& ts : split(a.topks)) {
    const float topk = std::stof(ts);
    for (AttentionMode mode : {AttentionMode::SLA, AttentionMode::SageSLA}) {
      if (!want(attention_mode_name(mode))) continue;
      AttentionOptions opts;
      opts.mode = mode;
      opts.topk = topk;
      opts.block_q = a.block_q;
      opts.block_k = a.block_k;
      opts.proj_l_weight = &dw;
      opts.proj_l_bias = &db;
      int bq = 0, bk = 0;
      cuda::sla_default_blocks(mode == AttentionMode::SageSLA, &bq, &bk);
      if (a.block_q) bq = a.block_q;
      if (a.block_k) bk = a.block_k;
      const int nk = int((L + bk - 1) / bk), kc = cpu::sla_topk_count(topk, nk);
      const double eff = 4.0 * double(L) * double(std::min<int64_t>(L, int64_t(kc) * bk)) * double(H) * double(D) +
                         4.0 * double(L) * double(H) * double(D) * double(D);
      bench::Timing t = bench::time_it([&] { ops::attention(q, k, v, o, opts); }, a.warmup, a.iters, true);
      char name[32];
      std::snprintf(name, sizeof name, "%s %dx%d", attention_mode_name(mode), bq, bk);
      print(name, topk, t, eff);
      if (a.breakdown) {
        bench::Timing tm = bench::time_it([&] { cuda::sla_block_map(q, k, bq, bk, topk); }, a.warmup, a.iters, true);
        Tensor table = cuda::sla_block_map(q, k, bq, bk, topk);
        cuda::SlaParams p;
        p.quantized = mode == AttentionMode::SageSLA;
        p.bq = bq;
        p.bk = bk;
        p.topk = topk;
        p.table = &table;
        p.sparse_only = true;
        bench::Timing ts2 = bench::time_it([&] { cuda::sla_attention(q, k, v, o, p); }, a.warmup, a.iters, true);
        std::printf("    block map alone %.3f ms; given a table, sparse branch + %s quantization %.3f ms\n",
                    tm.median_ms, p.quantized ? "q/k/v" : "no", ts2.median_ms);
        // The full op once more with per-stage events (after the timed runs, so caches and allocator are warm).
        cuda::SlaParams pf = p;
        pf.table = nullptr;
        pf.sparse_only = false;
        pf.proj_w = &dw;
        pf.proj_b = &db;
        pf.profile = true;
        std::printf("    ");
        std::fflush(stdout);
        cuda::sla_attention(q, k, v, o, pf);
      }
    }
  }
  // Dense last: at the 14B shape it is seconds of full load, and on one H100 the sagesla row measured right after
  // it took 19.39 ms against 17.23 ms on the same card before any load (the clocks drop as the card heats up).
  // Dense scales as L²: fewer iterations at the 14B shape keep the run short.
  const int dense_iters = L * H > 1000000 ? std::max(1, a.iters / 3) : a.iters;
  if (want("dense")) {
    AttentionOptions opts;
    bench::Timing t = bench::time_it([&] { ops::attention(q, k, v, o, opts); }, 1, dense_iters, true);
    print("dense", 0.f, t, dense_flop);
  }
}
#endif

td::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--iters", a->iters, "timed iterations (median reported)");
  app.add_option("--warmup", a->warmup, "untimed warm-up iterations");
  app.add_option("--topk", a->topks, "comma-separated top-k ratios");
  app.add_option("--modes", a->modes, "comma-separated subset of dense,sla,sagesla");
  app.add_option("--block-q", a->block_q, "query block (0 = per-mode/arch default)");
  app.add_option("--block-k", a->block_k, "key block (0 = per-mode/arch default)");
  app.add_flag("--no-14b", a->no_14b, "skip the L = 75,600 x 40 heads shape");
  app.add_flag("--breakdown", a->breakdown, "also time the block map and the sparse branch alone");
  return [a]() -> int {
#ifdef TD_WITH_CUDA
    TD_CHECK(cuda_available(), "bench attention", "needs a CUDA device");
    std::printf("device: %s\n", bench::device_description().c_str());
    run_shape(*a, 32760, 12, "Wan2.1-1.3B 480p");
    if (!a->no_14b) run_shape(*a, 75600, 40, "Wan2.1-14B 720p");
    return 0;
#else
    fail("bench attention", "this build has no CUDA backend");
#endif
  };
}

td::cli::BenchCase reg("attention", "Dense / SLA / SageSLA self-attention at Wan shapes (ms, TOPS)", setup);

}  // namespace
