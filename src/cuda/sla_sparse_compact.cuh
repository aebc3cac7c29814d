// The compact SageSLA sparse kernel for sm_90a (sla_sparse_compact.cu). Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_runtime.h>

#include "cuda/sla_sparse.cuh"

namespace td {
namespace cuda {
namespace sla {

// Whether the compact kernel covers these arguments: sagesla, 64x128 blocks, head_dim 128, an sm_90 GPU.
bool compact_fits(const SparseArgs& a);

// Needs a.tiled_kv (the pipelined kernel's K / V^T / KVW^T layouts). Throws td::Error when it does not fit.
void launch_sparse_compact(const SparseArgs& a, cudaStream_t stream);

}  // namespace sla
}  // namespace cuda
}  // namespace td
