// The software-pipelined SageSLA sparse kernel for sm_90a (sla_sparse_pipelined.cu). Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_runtime.h>

#include "cuda/sla_sparse.cuh"

namespace td {
namespace cuda {
namespace sla {

// Whether the pipelined kernel covers these arguments: sagesla, 64x128 blocks, head_dim 128, an sm_90 GPU.
bool pipelined_fits(const SparseArgs& a);

// Needs a.tiled_kv (kq / vt written by kquant / vquant TILED). Throws td::Error when it does not fit.
void launch_sparse_pipelined(const SparseArgs& a, cudaStream_t stream);

}  // namespace sla
}  // namespace cuda
}  // namespace td
