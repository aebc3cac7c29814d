// Launch shapes of the umT5 kernels (t5_kernels.cu). Why these values:
//  - attention: a block owns kT5AttnQ queries of one head and streams keys/values through shared memory in
//    tiles of kT5AttnK rows; the full score row (L <= 512 in practice) stays in shared memory, so softmax needs no
//    second pass over K. 32 queries x 8 threads each = 256 threads; each thread owns 8 key columns per tile when
//    scoring and head_dim/8 output dims when accumulating P.V. For L = 512 the block uses ~90 KB of shared memory
//    (2 blocks per SM on H100).
//  - attention_mma (head_dim 32/64/128, the umT5 case is 64): 4 warps x 16 queries = 64 queries of one head per
//    block, key/value tiles of 64 rows in static shared memory (K row-major, V transposed, rows padded by 8 bf16
//    so fragment reads hit 32 distinct banks): 18 KB for head_dim 64, plus the head's bias for every key - query
//    offset and the key mask (12 B x L dynamic). umT5 at 512 tokens: 8 x 64 = 512 blocks of 128 threads, several
//    resident per SM. The scalar kernel above remains for other head sizes.
//  - row kernels (rmsnorm): one block of 256 threads per row; D = 4096 gives 16 elements per thread.
#pragma once

#include <cstddef>

namespace td {
namespace cuda {

constexpr int kT5AttnQ = 32;        // queries per block
constexpr int kT5AttnK = 64;        // keys per shared-memory tile
constexpr int kT5AttnThreads = 256; // = kT5AttnQ * 8
constexpr int kT5AttnMaxHeadDim = 128;
constexpr int kT5MmaQ = 64;        // queries per block (16 per warp)
constexpr int kT5MmaK = 64;        // keys per shared-memory tile
constexpr int kT5MmaThreads = 128; // = kT5MmaQ / 16 warps
constexpr size_t kT5MmaMaxDynSmem = 96 * 1024;  // bias + mask: 3L-1 floats, i.e. L up to ~8k tokens
constexpr int kT5RowThreads = 256;
constexpr int kT5EltThreads = 256;

}  // namespace cuda
}  // namespace td
