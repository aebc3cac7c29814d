// `turbodiff bench gemm`: W8A8 against cuBLASLt bf16 (ops::linear) at Wan's linear shapes, measured in the same run.
//
//   turbodiff bench gemm [--iters N] [--warmup N] [--no-14b] [--kernel ...|all] [--flush-l2] [--bias]
//                        [--shape MxKxN]...
//
// Per shape: cuBLASLt bf16 (bf16 in/out, fp32 accumulate), the W8A8 GEMM alone (int8 activation already quantized:
// the DiT's q/k/v/ffn.0 inputs come quantized out of the fused norm kernels), the activation quantizer alone
// (bf16 -> int8 + 1x128 scales), quant + GEMM as two launches (o-proj, whose input comes from attention), and the
// GEMM with the quantizing GELU epilogue (ffn.0, whose int8 output feeds ffn.2 directly).
// Speedups are cuBLAS time / W8A8 time. TOPS = 2*M*N*K / time.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "ops/ops.h"
#include "ops/w8a8.h"
#ifdef TD_WITH_CUDA
#include "cuda/w8a8_gemm.h"
#endif

namespace {

using namespace td;

struct Args {
  int iters = 20, warmup = 5;
  bool no_14b = false, flush = false, bias = false;
  std::string kernel = "auto";
  std::vector<std::string> shapes;  // --shape MxKxN (repeatable); empty = Wan's six shapes
};

#ifdef TD_WITH_CUDA

using bench::random_device;

void shape(const Args& a, int64_t M, int64_t K, int64_t N, const std::vector<std::string>& kernels) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  Tensor x = random_device({M, K}, DType::BF16, 1), w = random_device({N, K}, DType::BF16, 2, 0.02f);
  Tensor y = Tensor::empty({M, N}, DType::BF16, Device::CUDA);
  Tensor wq = random_device({N, K}, DType::I8, 3), ws = random_device({N / 128, K / 128}, DType::F32, 4, 1e-4f);
  ops::Int8Act act;
  ops::quantize_act_int8(x, act);
  // --bias: every GEMM adds a bf16 bias as the DiT's linears do (cuBLASLt in its epilogue).
  Tensor bias_t = a.bias ? random_device({N}, DType::BF16, 5, 0.1f) : Tensor();
  const Tensor* bias = a.bias ? &bias_t : nullptr;

  auto t_ref = bench::time_it([&] { ops::linear(x, w, bias, y); }, a.warmup, a.iters, true, a.flush);
  auto t_q = bench::time_it([&] { ops::quantize_act_int8(x, act); }, a.warmup, a.iters, true, a.flush);
  std::printf("M=%-6lld K=%-6lld N=%-6lld  cuBLASLt bf16 %8.3f ms %7.1f TFLOP/s | act quant %6.3f ms (separate kernel)\n",
              (long long)M, (long long)K, (long long)N, t_ref.median_ms, flops / (t_ref.median_ms * 1e9), t_q.median_ms);
  for (const std::string& kn : kernels) {
    cuda::set_w8a8_kernel(kn.c_str());
    auto t_g = bench::time_it([&] { ops::linear_w8a8(act, wq, ws, bias, y); }, a.warmup, a.iters, true, a.flush);
    auto t_all = bench::time_it([&] {
      ops::quantize_act_int8(x, act);
      ops::linear_w8a8(act, wq, ws, bias, y);
    }, a.warmup, a.iters, true, a.flush);
    ops::Int8Act h8;
    auto t_q8 = bench::time_it([&] { ops::linear_w8a8_quant(act, wq, ws, bias, h8, Epilogue::GeluTanh); },
                               a.warmup, a.iters, true, a.flush);
    std::printf("    w8a8 %-6s GEMM alone %8.3f ms %7.1f TOPS  speedup %5.2fx | quant+GEMM (unfused, 2 launches) %8.3f ms  "
                "speedup %5.2fx\n",
                cuda::w8a8_kernel_name(), t_g.median_ms, flops / (t_g.median_ms * 1e9), t_ref.median_ms / t_g.median_ms,
                t_all.median_ms, t_ref.median_ms / t_all.median_ms);
    std::printf("           GEMM+GELU->int8 epilogue (ffn.0 feeding ffn.2) %8.3f ms  speedup %5.2fx\n", t_q8.median_ms,
                t_ref.median_ms / t_q8.median_ms);
  }
  cuda::set_w8a8_kernel("auto");
}
#endif

int run(const Args& a) {
#ifndef TD_WITH_CUDA
  fail("bench gemm", "needs a CUDA build");
#else
  TD_CHECK(cuda_available(), "bench gemm", "no CUDA device");
  std::vector<std::string> kernels;
  if (a.kernel == "all") {
    for (const char* v : cuda::w8a8_kernel_names())
      if (cuda::w8a8_kernel_runs(v)) kernels.push_back(v);
  } else {
    cuda::set_w8a8_kernel(a.kernel.c_str());  // validates the name
    kernels.push_back(a.kernel);
  }
  std::printf("%s\nW8A8 (int8 x int8, 1x128 activation groups, 128x128 weight tiles) vs cuBLASLt bf16, %d iters\n",
              bench::device_description().c_str(), a.iters);
  if (!a.shapes.empty()) {  // one shape at a time, e.g. for a profiler that captures the first launch
    for (const std::string& sh : a.shapes) {
      long long m = 0, k = 0, n = 0;
      char tail = 0;
      TD_CHECK(std::sscanf(sh.c_str(), "%lldx%lldx%lld%c", &m, &k, &n, &tail) == 3 && m > 0 && k > 0 && n > 0,
               "--shape", "expected MxKxN with positive integers, got '" + sh + "'");
      shape(a, m, k, n, kernels);
    }
    return 0;
  }
  shape(a, 32760, 1536, 1536, kernels);
  shape(a, 32760, 1536, 8960, kernels);
  shape(a, 32760, 8960, 1536, kernels);
  if (!a.no_14b) {
    shape(a, 75600, 5120, 5120, kernels);
    shape(a, 75600, 5120, 13824, kernels);
    shape(a, 75600, 13824, 5120, kernels);
  }
  return 0;
#endif
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--iters", a->iters, "timed runs per measurement (default 20)");
  app.add_option("--warmup", a->warmup, "untimed runs first (default 5)");
  app.add_flag("--no-14b", a->no_14b, "skip the 14B 720p shapes");
  app.add_flag("--flush-l2", a->flush, "flush L2 before each timed run");
  app.add_flag("--bias", a->bias, "add a bf16 bias in every GEMM (as the DiT's linears do)");
  app.add_option("--shape", a->shapes,
                 "run only this M x K x N shape instead of Wan's six (e.g. 32760x1536x1536; repeatable)");
  app.add_option("--kernel", a->kernel, "W8A8 GEMM kernel: auto, mma, ws, wsmc, ws256, ws256mc, ws3, ws2, ws2mc, by-shape or all (default auto)")
      ->check(CLI::IsMember({"auto", "mma", "ws", "wsmc", "ws256", "ws256mc", "ws3", "ws2", "ws2mc", "by-shape", "all"}));
  return [a] { return run(*a); };
}

cli::BenchCase reg("gemm", "W8A8 int8 GEMM vs cuBLASLt bf16 at Wan's linear shapes (ms, TOPS, speedup)", setup);

}  // namespace
