#include "cuda/tensor_map.h"

#include <cudaTypedefs.h>

#include "cuda/cuda_common.cuh"

namespace td {
namespace cuda {

namespace {
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult q{};
    TD_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &q));
    TD_CHECK(q == cudaDriverEntryPointSuccess && ptr != nullptr, "tensor map", "driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}
}  // namespace

CUtensorMap encode_tensor_map(CUtensorMapDataType type, int rank, const void* ptr, const uint64_t* dims,
                              const uint64_t* strides, const uint32_t* box, CUtensorMapSwizzle swizzle,
                              const char* what) {
  TD_CHECK(rank >= 1 && rank <= 5, "tensor map", what, ": rank ", rank, " out of range");
  TD_CHECK((reinterpret_cast<uintptr_t>(ptr) & 15) == 0, "tensor map", what, ": TMA needs a 16-byte aligned base");
  cuuint64_t d[5], s[4];
  cuuint32_t b[5], e[5];
  for (int i = 0; i < rank; i++) {
    d[i] = cuuint64_t(dims[i]);
    b[i] = cuuint32_t(box[i]);
    e[i] = 1;
  }
  for (int i = 0; i + 1 < rank; i++) {
    TD_CHECK(strides[i] % 16 == 0, "tensor map", what, ": TMA needs strides that are multiples of 16 bytes");
    s[i] = cuuint64_t(strides[i]);
  }
  CUtensorMap m;
  const CUresult r = tensor_map_encoder()(&m, type, cuuint32_t(rank), const_cast<void*>(ptr), d, s, b, e,
                                          CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  TD_CHECK(r == CUDA_SUCCESS, "tensor map", what, ": cuTensorMapEncodeTiled failed (", int(r), ")");
  return m;
}

}  // namespace cuda
}  // namespace td
