// Launch shapes of the umT5 kernels (t5_kernels.cu). Why these values:
//  - attention: a block owns kT5AttnQ queries of one head and streams keys/values through shared memory in
//    tiles of kT5AttnK rows; the full score row (L <= 512 in practice) stays in shared memory, so softmax needs no
//    second pass over K. 32 queries x 8 threads each = 256 threads; each thread owns 8 key columns per tile when
//    scoring and head_dim/8 output dims when accumulating P.V. For L = 512 the block uses ~90 KB of shared memory
//    (2 blocks per SM on H100).
//  - row kernels (rmsnorm): one block of 256 threads per row; D = 4096 gives 16 elements per thread.
#pragma once

namespace td {
namespace cuda {

constexpr int kT5AttnQ = 32;        // queries per block
constexpr int kT5AttnK = 64;        // keys per shared-memory tile
constexpr int kT5AttnThreads = 256; // = kT5AttnQ * 8
constexpr int kT5AttnMaxHeadDim = 128;
constexpr int kT5RowThreads = 256;
constexpr int kT5EltThreads = 256;

}  // namespace cuda
}  // namespace td
