// CUDA W8A8 kernels behind ops/w8a8.h (same names and semantics; plain C++ header so the dispatcher can include it).
// Activations bf16 (or f32), weights i8 + f32 scales, outputs bf16/f32, residual stream f32.
#pragma once

#include <vector>

#include "ops/w8a8.h"

namespace td {
namespace cuda {

void quantize_act_int8(const Tensor& x, ops::Int8Act& out);
void linear_w8a8(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep);
void linear_w8a8_residual(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid);
void linear_w8a8_quant(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                       ops::Int8Act& out, Epilogue ep);
void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c);

// The GEMM kernels: mma.sync (every arch) and the sm_90a ones (see w8a8_gemm.cuh).
enum class W8A8Kernel { Mma, Ws, WsMc, Ws256, Ws256Mc, Ws3, Ws2, Ws2Mc, ByShape };
// Their names, in enum order: "mma", "ws", "wsmc", "ws256", "ws256mc", "ws3", "ws2", "ws2mc", "by-shape".
const std::vector<const char*>& w8a8_kernel_names();
// Which GEMM kernel linear_w8a8 uses: "auto" (w8a8cfg::kAutoSm90Kernel on sm_90 when built, else mma.sync) or one of
// w8a8_kernel_names(). Initial value from TD_W8A8_KERNEL; tests and the bench set it explicitly. Naming an sm_90a
// kernel where it cannot run raises td::Error.
void set_w8a8_kernel(const char* name);
const char* w8a8_kernel_name();
// Whether `name` (not "auto") can run here.
bool w8a8_kernel_runs(const char* name);

}  // namespace cuda
}  // namespace td
