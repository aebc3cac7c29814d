// TMA tensor maps (cuTensorMapEncodeTiled) for the sm_90a kernels, encoded through the runtime's driver entry point
// so that nothing links against libcuda. Host only.
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only)

#include <cstdint>

namespace td {
namespace cuda {

// Encodes a map of `rank` dims (dims[0] innermost, in elements; strides[i] in bytes for dims 1..rank-1) with
// boxes of box[0..rank-1] elements, no interleave, the given swizzle, 256-byte L2 promotion and zero fill out of
// bounds. `what` names the tensor in the error when the driver refuses it.
CUtensorMap encode_tensor_map(CUtensorMapDataType type, int rank, const void* ptr, const uint64_t* dims,
                              const uint64_t* strides, const uint32_t* box, CUtensorMapSwizzle swizzle,
                              const char* what);

}  // namespace cuda
}  // namespace td
