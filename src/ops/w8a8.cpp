// Dispatch for the W8A8 ops: on the device of the output (or of the in-place tensor).
#include "ops/w8a8.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cpu/w8a8_ref.h"
#ifdef TD_WITH_CUDA
#include "cuda/fused_norm_quant.h"
#include "cuda/w8a8_gemm.h"
#endif

namespace td {
namespace ops {

namespace {

#ifndef TD_WITH_CUDA
[[noreturn]] void no_cuda(const char* what) {
  fail(what, "this build has no CUDA backend; use --device cpu");
}
#endif

bool on_cuda(const Tensor& t) { return t.defined() && t.is_cuda(); }

}  // namespace

#ifdef TD_WITH_CUDA
#define TD_W8A8_CUDA(call) call
#else
#define TD_W8A8_CUDA(call) no_cuda("w8a8")
#endif

void ensure_int8_act(Int8Act& out, int64_t rows, int64_t cols, Device dev) {
  TD_CHECK(cols % 128 == 0, "w8a8 activation", "columns must be a multiple of 128, got ", cols);
  if (!(out.q.defined() && out.q.device() == dev && out.q.dtype() == DType::I8 && out.q.shape() == Shape{rows, cols}))
    out.q = Tensor::empty({rows, cols}, DType::I8, dev);
  if (!(out.scale.defined() && out.scale.device() == dev && out.scale.dtype() == DType::F32 &&
        out.scale.shape() == Shape{rows, cols / 128}))
    out.scale = Tensor::empty({rows, cols / 128}, DType::F32, dev);
}

void quantize_act_int8(const Tensor& x, Int8Act& out) {
  TD_CHECK(x.defined(), "w8a8 activation", "missing tensor");
  if (x.is_cuda()) {
    TD_W8A8_CUDA(cuda::quantize_act_int8(x, out));
  } else {
    cpu::quantize_act_int8(x, out);
  }
}

void linear_w8a8(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep) {
  if (on_cuda(y)) {
    TD_W8A8_CUDA(cuda::linear_w8a8(x, w_int8, w_scale, bias, y, ep));
  } else {
    cpu::linear_w8a8(x, w_int8, w_scale, bias, y, ep);
  }
}

void linear_w8a8(const Tensor& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep) {
  Int8Act a;
  quantize_act_int8(x, a);
  linear_w8a8(a, w_int8, w_scale, bias, y, ep);
}

void linear_w8a8_residual(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid) {
  if (on_cuda(resid)) {
    TD_W8A8_CUDA(cuda::linear_w8a8_residual(x, w_int8, w_scale, bias, gate, resid));
  } else {
    cpu::linear_w8a8_residual(x, w_int8, w_scale, bias, gate, resid);
  }
}

void linear_w8a8_residual(const Tensor& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid) {
  Int8Act a;
  quantize_act_int8(x, a);
  linear_w8a8_residual(a, w_int8, w_scale, bias, gate, resid);
}

void linear_w8a8_quant(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Int8Act& out,
                       Epilogue ep) {
  TD_CHECK(x.q.defined(), "w8a8 activation", "not quantized");
  if (x.q.is_cuda()) {
    TD_W8A8_CUDA(cuda::linear_w8a8_quant(x, w_int8, w_scale, bias, out, ep));
  } else {
    Tensor y = Tensor::empty({x.q.size(0), w_int8.size(0)}, DType::F32);
    cpu::linear_w8a8(x, w_int8, w_scale, bias, y, ep);
    cpu::quantize_act_int8(y, out);
  }
}

void quantize_weight_int8(const Tensor& w, Tensor& w_int8, Tensor& w_scale) {
  const std::string name = w.name().empty() ? "weight" : w.name();
  TD_CHECK(w.defined(), name, "missing tensor");
  TD_CHECK(dtype_is_float(w.dtype()), name, "expected a float weight to quantize, got ", w.describe());
  TD_CHECK(w.dim() == 2, name, "expected a 2-D [out, in] weight, got ", w.describe());
  const Tensor f = w.to_f32_host().contiguous();
  const int64_t N = f.size(0), K = f.size(1);
  TD_CHECK(N > 0 && K > 0, name, "empty weight ", w.describe());
  for (int64_t i = 0; i < f.numel(); i++)
    TD_CHECK(std::isfinite(f.ptr<float>()[i]), name, "non-finite value at flat index ", i);
  w_int8 = Tensor::empty({N, K}, DType::I8, Device::CPU);
  w_scale = Tensor::empty({(N + kW8A8Block - 1) / kW8A8Block, (K + kW8A8Block - 1) / kW8A8Block}, DType::F32,
                          Device::CPU);
  cpu::quantize_blocks_int8(f.ptr<float>(), N, K, kW8A8Block, w_int8.ptr<int8_t>(), w_scale.ptr<float>());
}

void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Int8Act& out) {
  TD_CHECK(x.defined(), "layernorm_modulate_quant x", "missing tensor");
  if (x.is_cuda()) {
    TD_W8A8_CUDA(cuda::layernorm_modulate_quant(x, shift, scale, eps, out));
  } else {
    cpu::layernorm_modulate_quant(x, shift, scale, eps, out);
  }
}

void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Int8Act& out) {
  TD_CHECK(x.defined(), "layernorm_quant x", "missing tensor");
  if (x.is_cuda()) {
    TD_W8A8_CUDA(cuda::layernorm_quant(x, weight, bias, eps, out));
  } else {
    cpu::layernorm_quant(x, weight, bias, eps, out);
  }
}

void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta) {
  TD_CHECK(x.defined(), "rmsnorm_rope3d x", "missing tensor");
  if (x.is_cuda()) {
    TD_W8A8_CUDA(cuda::rmsnorm_rope3d(x, weight, eps, heads, frames, height, width, theta));
  } else {
    cpu::rmsnorm_rope3d(x, weight, eps, heads, frames, height, width, theta);
  }
}

void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c) {
  if (on_cuda(c)) {
    TD_W8A8_CUDA(cuda::gemm_s8s8_s32(a, b, c));
  } else {
    cpu::gemm_s8s8_s32(a, b, c);
  }
}

}  // namespace ops
}  // namespace td
