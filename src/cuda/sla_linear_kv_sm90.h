// The SLA linear branch's k/v pass on sm_90a (head_dim 128): the same sums as linear_kv_kernel in sla_attention.cu,
// with phi(k)^T v on wgmma. Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace td {
namespace cuda {

// Whether the wgmma form can run for head_dim `D` on this device (sm_90, D = 128) and, unless `forced`, is not
// switched off by TD_SLA_LINEAR_WGMMA=0.
bool linear_kv_sm90_fits(int D, bool forced = false);

// k, v: bf16 [L, H, 128]. Adds into kv [H, 128, 128] (sum phi(k)^T v), z [H, 128] (sum phi(k)), and where non-null
// ksum [H, 128] (sum k) and vmax [H, 128] (amax |v|, an atomic max on non-negative floats). One CTA per `chunk`
// tokens (a multiple of sla_cfg::kLinearTile) and head.
void launch_linear_kv_sm90(const __nv_bfloat16* k, const __nv_bfloat16* v, int L, int H, int chunk, float* kv,
                           float* z, float* ksum, float* vmax, cudaStream_t stream);

}  // namespace cuda
}  // namespace td
