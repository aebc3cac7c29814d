// `turbodiff bench ops`: the CUDA ops alone at Wan's shapes, in ms and TFLOP/s (compute-bound ops) or GB/s
// (memory-bound ones). Attention at L = 32,760 / 12 heads (1.3B, 480p) and L = 75,600 / 40 heads (14B, 720p),
// self and cross (512 keys); `--variants` also times every compiled attention tile variant (attention_config.h).
//
//   turbodiff bench ops [--iters N] [--variants] [--no-14b] [--only attention|linear|norm]
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "ops/ops.h"
#include "ops/w8a8.h"
#ifdef TD_WITH_CUDA
#include "cuda/attention.h"
#include "cuda/attention_config.h"
#include "cuda/linear.h"
#endif

namespace {

using namespace td;

struct Args {
  int iters = 20, warmup = 3;
  bool variants = false, no_14b = false, flush = false;
  std::string only;
};


using bench::random_device;

void row(const char* what, const std::string& shape, const bench::Timing& t, double flops, double bytes) {
  std::printf("  %-22s %-34s %9.3f ms", what, shape.c_str(), t.median_ms);
  if (flops > 0) std::printf("  %7.1f TFLOP/s", flops / (t.median_ms * 1e9));
  if (bytes > 0) std::printf("  %7.0f GB/s", bytes / (t.median_ms * 1e6));
  std::printf("\n");
}

#ifdef TD_WITH_CUDA
void bench_attention(const Args& a, int64_t Lq, int64_t Lk, int64_t H, const char* label) {
  const int64_t Dh = 128;
  Tensor q = random_device({Lq, H, Dh}, DType::BF16, 1), k = random_device({Lk, H, Dh}, DType::BF16, 2);
  Tensor v = random_device({Lk, H, Dh}, DType::BF16, 3), o = Tensor::empty({Lq, H, Dh}, DType::BF16, Device::CUDA);
  const double flops = 4.0 * double(Lq) * double(Lk) * double(Dh) * double(H);
  const std::string shape = cat("Lq=", Lq, " Lk=", Lk, " H=", H, " d=", Dh);
  bench::Timing t = bench::time_it([&] { cuda::attention(q, k, v, o); }, a.warmup, a.iters, true, a.flush);
  row(label, shape, t, flops, 0);
  if (a.variants) {
    for (int i = 0; i < cuda::attention_variant_count(); i++) {
      if (cuda::attention_variant_head_dim(i) != Dh) continue;
      bench::Timing tv =
          bench::time_it([&] { cuda::attention_variant(i, q, k, v, o); }, a.warmup, a.iters, true, a.flush);
      row(cat("  ", cuda::attention_variant_name(i)).c_str(), "", tv, flops, 0);
    }
    // Same-run baseline for the lazy softmax rescale: the default tile rescaling O on every key tile.
    cuda::set_attention_rescale_slack_log2(-INFINITY);
    bench::Timing te = bench::time_it([&] { cuda::attention(q, k, v, o); }, a.warmup, a.iters, true, a.flush);
    cuda::set_attention_rescale_slack_log2(cuda::kAttentionRescaleSlackLog2);
    row("  default, rescale every tile", "", te, flops, 0);
  }
}
#endif

// bias: F32 (what the DiT passes), BF16, or U8 for none (the plain GEMM, the yardstick for the fused epilogues).
void bench_linear(const Args& a, int64_t M, int64_t K, int64_t N, Epilogue ep, DType out, DType bias = DType::F32) {
  const bool has_bias = bias != DType::U8;
  Tensor x = random_device({M, K}, DType::BF16, 4), w = random_device({N, K}, DType::BF16, 5, 0.02f);
  Tensor b = has_bias ? random_device({N}, bias, 6) : Tensor();
  Tensor y = Tensor::empty({M, N}, out, Device::CUDA);
  bench::Timing t = bench::time_it([&] { ops::linear(x, w, has_bias ? &b : nullptr, y, ep); }, a.warmup, a.iters,
                                   true, a.flush);
  const std::string what = cat("linear", has_bias ? "+bias" : "", ep == Epilogue::GeluTanh ? "+gelu" : "",
                               has_bias && bias == DType::BF16 ? " (bf16 b)" : "");
  row(what.c_str(), cat(M, "x", K, "x", N, out == DType::F32 ? " ->f32" : ""), t, 2.0 * M * K * N, 0);
#ifdef TD_WITH_CUDA
  std::printf("    (%s)\n", cuda::linear_last_plan().c_str());
#endif
}

void bench_norms(const Args& a, int64_t L, int64_t D, int64_t H, int f, int hh, int ww) {
  Tensor xf = random_device({L, D}, DType::F32, 7), shift = random_device({D}, DType::F32, 8), scale = random_device({D}, DType::F32, 9);
  Tensor yb = Tensor::empty({L, D}, DType::BF16, Device::CUDA);
  bench::Timing t = bench::time_it([&] { ops::layernorm_modulate(xf, shift, scale, 1e-6f, yb); }, a.warmup, a.iters,
                                   true, a.flush);
  row("layernorm_modulate", cat(L, "x", D, " f32->bf16"), t, 0, double(L * D) * 6);
  Tensor wq = random_device({D}, DType::F32, 10), q = random_device({L, D}, DType::BF16, 11);
  t = bench::time_it([&] { ops::rmsnorm(q, wq, 1e-6f); }, a.warmup, a.iters, true, a.flush);
  row("rmsnorm (in place)", cat(L, "x", D, " bf16"), t, 0, double(L * D) * 4);
  Tensor q3 = q.view({L, H, D / H});
  t = bench::time_it([&] { ops::rope3d(q3, f, hh, ww); }, a.warmup, a.iters, true, a.flush);
  row("rope3d (in place)", cat(L, "x", H, "x", D / H, " bf16"), t, 0, double(L * D) * 4);
  // The fused kernels the W8A8 forward runs instead (norm1/norm2 -> int8, q/k RMSNorm + RoPE in one pass).
  ops::Int8Act q8;
  t = bench::time_it([&] { ops::layernorm_modulate_quant(xf, shift, scale, 1e-6f, q8); }, a.warmup, a.iters, true,
                     a.flush);
  row("layernorm_modulate_quant", cat(L, "x", D, " f32->int8"), t, 0, double(L * D) * 5 + double(L * D / 128) * 4);
  t = bench::time_it([&] { ops::rmsnorm_rope3d(q, wq, 1e-6f, int(H), f, hh, ww); }, a.warmup, a.iters, true, a.flush);
  row("rmsnorm_rope3d (in place)", cat(L, "x", D, " bf16"), t, 0, double(L * D) * 4);
  Tensor gate = random_device({D}, DType::F32, 12);
  t = bench::time_it([&] { ops::gated_residual(xf, yb, gate); }, a.warmup, a.iters, true, a.flush);
  row("gated_residual", cat(L, "x", D, " f32+=bf16*g"), t, 0, double(L * D) * 10);
  Tensor act = random_device({L, 4 * D}, DType::BF16, 13, 0.5f);
  t = bench::time_it([&] { ops::gelu_tanh(act); }, a.warmup, a.iters, true, a.flush);
  row("gelu_tanh (in place)", cat(L, "x", 4 * D, " bf16"), t, 0, double(L * 4 * D) * 4);
}

int run(const Args& a) {
  TD_CHECK(cli::resolve_device("cuda") == 1, "--device", "bench ops needs a CUDA device");
  TD_CHECK(a.iters >= 1, "--iters", "need at least one timed iteration");
  std::printf("bench ops: %s, median of %d after %d warm-up%s\n", bench::device_description().c_str(), a.iters,
              a.warmup, a.flush ? ", L2 flushed before each run" : "");
  const bool all = a.only.empty();
#ifdef TD_WITH_CUDA
  if (all || a.only == "attention") {
    std::printf("attention (dense, bf16, fp32 softmax):\n");
    bench_attention(a, 32760, 32760, 12, "self 1.3B 480p");
    bench_attention(a, 32760, 512, 12, "cross 1.3B 480p");
    if (!a.no_14b) {
      bench_attention(a, 75600, 75600, 40, "self 14B 720p");
      bench_attention(a, 75600, 512, 40, "cross 14B 720p");
    }
  }
#endif
  if (all || a.only == "linear") {
    std::printf("linear (cuBLASLt bf16, fp32 accumulate):\n");
    bench_linear(a, 32760, 1536, 1536, Epilogue::None, DType::BF16);
    bench_linear(a, 32760, 1536, 8960, Epilogue::GeluTanh, DType::BF16);
    bench_linear(a, 32760, 8960, 1536, Epilogue::None, DType::BF16);
    bench_linear(a, 32760, 1536, 1536, Epilogue::None, DType::F32);
    bench_linear(a, 32760, 1536, 1536, Epilogue::None, DType::BF16, DType::BF16);
    bench_linear(a, 32760, 1536, 1536, Epilogue::None, DType::BF16, DType::U8);  // plain GEMM, same run
    bench_linear(a, 32760, 1536, 8960, Epilogue::None, DType::BF16, DType::U8);
    bench_linear(a, 32760, 8960, 1536, Epilogue::None, DType::BF16, DType::U8);
    if (!a.no_14b) {
      bench_linear(a, 75600, 5120, 5120, Epilogue::None, DType::BF16);
      bench_linear(a, 75600, 5120, 13824, Epilogue::GeluTanh, DType::BF16);
      bench_linear(a, 75600, 13824, 5120, Epilogue::None, DType::BF16);
    }
  }
  if (all || a.only == "norm") {
    std::printf("norms and elementwise (1.3B 480p shapes):\n");
    bench_norms(a, 32760, 1536, 12, 21, 30, 52);
    if (!a.no_14b) {
      std::printf("norms and elementwise (14B 720p shapes):\n");
      bench_norms(a, 75600, 5120, 40, 21, 45, 80);
    }
  }
  return 0;
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--iters", a->iters, "timed runs per op (default 20)");
  app.add_option("--warmup", a->warmup, "untimed runs first (default 3)");
  app.add_flag("--variants", a->variants, "also time every compiled attention tile variant");
  app.add_flag("--no-14b", a->no_14b, "skip the 14B 720p shapes");
  app.add_flag("--flush-l2", a->flush, "flush L2 before each timed run");
  app.add_option("--only", a->only, "attention, linear or norm")->check(CLI::IsMember({"attention", "linear", "norm"}));
  return [a] { return run(*a); };
}

cli::BenchCase reg("ops", "CUDA ops alone at Wan shapes: attention, linear, norms (ms, TFLOP/s, GB/s)", setup);

}  // namespace
