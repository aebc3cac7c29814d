// Elementwise activations in place. f32 natively; bf16 host tensors are computed in f32 and rounded back.
#include "cpu/activations.h"

#include <cmath>

#include "core/threads.h"
#include "cpu/common.h"

namespace td {
namespace cpu {

namespace {

template <typename F>
void apply(Tensor& x, const char* op, F f) {
  TD_CHECK(!x.is_cuda(), cat(op, " input"), x.describe(), " is on cuda; the CPU op needs a host tensor");
  detail::expect_contiguous(x, op, "input");
  TD_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, cat(op, " input"), x.describe(),
           ": expected f32 or bf16");
  const int64_t n = x.numel();
  if (x.dtype() == DType::F32) {
    float* p = x.ptr<float>();
    parallel_for(n, [&](int64_t a, int64_t b) { for (int64_t i = a; i < b; i++) p[i] = f(p[i]); }, 1 << 14);
  } else {
    uint16_t* p = x.ptr<uint16_t>();
    parallel_for(
        n, [&](int64_t a, int64_t b) { for (int64_t i = a; i < b; i++) p[i] = f32_to_bf16(f(bf16_to_f32(p[i]))); },
        1 << 14);
  }
}

}  // namespace

void silu(Tensor& x) {
  apply(x, "silu", [](float v) { return v / (1.f + std::exp(-v)); });
}

void gelu_tanh(Tensor& x) {
  apply(x, "gelu_tanh",
        [](float v) { return 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))); });
}

}  // namespace cpu
}  // namespace td
