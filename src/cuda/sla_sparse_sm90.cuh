// The bulk-copy SageSLA sparse kernels for sm_90a: the software-pipelined one (sla_sparse_pipelined.cu) and the
// compact one (sla_sparse_compact.cu, the default). Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_runtime.h>

#include "cuda/sla_sparse.cuh"

namespace td {
namespace cuda {
namespace sla {

// Whether the kernel covers these arguments: sagesla, 64x128 blocks, head_dim 128, an sm_90 GPU.
bool pipelined_fits(const SparseArgs& a);
bool compact_fits(const SparseArgs& a);

// Both need a.tiled_kv (kq / vt / kvwt written by kquant / vquant / fold TILED). Throw td::Error when they do not fit.
void launch_sparse_pipelined(const SparseArgs& a, cudaStream_t stream);
void launch_sparse_compact(const SparseArgs& a, cudaStream_t stream);

}  // namespace sla
}  // namespace cuda
}  // namespace td
