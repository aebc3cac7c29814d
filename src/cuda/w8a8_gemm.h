// CUDA W8A8 kernels behind ops/w8a8.h (same names and semantics; plain C++ header so the dispatcher can include it).
// Activations bf16 (or f32), weights i8 + f32 scales, outputs bf16/f32, residual stream f32.
#pragma once

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

// Which GEMM kernel linear_w8a8 uses: "auto" (w8a8cfg::kAutoSm90Kernel on sm_90 when built, else mma.sync), "mma",
// "wgmma", "wgmma2" (overlapped fold), "ws" (TMA + warp-specialized, persistent), "wsmc" (ws on 2-CTA clusters sharing W by multicast). Initial value from TD_W8A8_KERNEL; tests and the bench set it explicitly.
// Naming a wgmma variant where it cannot run raises td::Error.
void set_w8a8_kernel(const char* name);
const char* w8a8_kernel_name();

}  // namespace cuda
}  // namespace td
