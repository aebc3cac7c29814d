// Tile and arch choices of the SLA / SageSLA CUDA kernels (src/cuda/sla_*.cu), in one place.
#pragma once

namespace td {
namespace cuda {
namespace sla_cfg {

// Block geometry of the block map = the sparse kernel's CTA tile (a CTA owns one query block of one head).
// sla: 128 query x 64 key tokens everywhere (TurboDiffusion's SLA). sagesla: 64 x 128 on sm_90 (TurboDiffusion
// picks it to match its Hopper kernel), 128 x 64 elsewhere. Only these two geometries are compiled.
constexpr int kSlaBlockQ = 128, kSlaBlockK = 64;
constexpr int kSageBlockQSm90 = 64, kSageBlockKSm90 = 128;

// cp.async ring depth of the 128x64 wgmma sparse kernel (one CTA per SM: registers bound it, not shared memory).
// The other kernels keep 2 stages so that two CTAs fit per SM. Measured on an H100 (L=32760 x 12, topk 0.1):
// 4 stages 2.72 ms vs 2 stages 2.47 ms, so 2.
constexpr int kStagesWg128 = 2;

// Sparse kernel: the first kSelCache entries of a CTA's table row (and their K scales) are staged in shared memory
// in the prologue; longer rows (top-k near 1 at long L) read the rest from global memory. 256 covers top-k 0.15 at
// the 14B shape (kc = 88 with 128-token key blocks, 177 with 64) and keeps sla 128x64 Dh128 (96 KiB dynamic) within
// the 99 KiB per-block limit of sm_89/sm_120.
constexpr int kSelCache = 256;

// One warp owns 16 query rows (one m16 slab of mma.sync), so a CTA has block_q / 16 warps.
constexpr int kRowsPerWarp = 16;

// V is quantized to e4m3 with scale amax/448 per (head, channel); P is quantized as e4m3(448 * p). Both use the full
// e4m3 range: the kernels accumulate P·V in fp32 (two-level: one fresh fp32 chain per key block), so the fp16
// overflow bound that made TurboDiffusion use 2.25 for V does not apply.
constexpr float kFp8Max = 448.f;
constexpr float kLog2Fp8Max = 8.807354922057604f;  // log2(448): the sparse kernel folds P's 448 into ex2's argument

// Linear branch reduction: CTAs per head are chosen so that the whole grid is about this many waves of SMs. H100,
// L = 32760 x 12, linear_kv (ms, two runs each): 1 wave 0.277 / 0.288, 2 waves 0.233-0.240 / 0.221, 3 waves 0.277,
// 4 waves 0.271, 6 waves 0.313 (more CTAs mean more atomic adds of the 128 x 128 partial KV per head).
constexpr int kLinearWaves = 2;
constexpr int kLinearTile = 64;  // tokens per smem tile in the phi(k)^T v reduction
// The sm_90a form of that reduction (sla_linear_kv_sm90.cu, head_dim 128): phi(k)^T v on wgmma (bf16, both operands
// MN-major from shared memory, 128-byte swizzle), issued asynchronously so that tile t's MMAs run while every warp
// computes phi of tile t + 1. Three stages of 64 tokens x (k, v) x 128 channels (32 KiB each): tile t + 2 loads, t + 1
// is turned into phi, t is on the tensor cores. 97 KiB per CTA, two CTAs of two warpgroups per SM.
constexpr int kLinearSm90Stages = 3;

// Top-k selection sorts (score, index) keys of one query block in shared memory: at most this many key blocks.
constexpr int kMaxKeyBlocks = 8192;

// The software-pipelined sparse kernel (sla_sparse_pipelined.cu): sagesla 64x128 blocks, head_dim 128, sm_90a.
// Two slots each for K and V^T (16 KiB per slot) keep the CTA at 90 KiB of shared memory, so that two CTAs (8 warps)
// share an SM; the refill schedule still gives every load one whole iteration to land.
namespace pipelined {
constexpr int kBlockQ = 64, kBlockK = 128, kHeadDim = 128;
constexpr int kStages = 2;
}  // namespace pipelined

// The compact sparse kernel (sla_sparse_compact.cu): the same blocks without the in-CTA overlap, small enough for
// three CTAs (12 warps) per SM: P stays in registers, acc and the P·V chain share registers, one K and one V^T slot.
namespace compact {
constexpr int kBlockQ = 64, kBlockK = 128, kHeadDim = 128;
constexpr int kCtasPerSm = 3;
}  // namespace compact

}  // namespace sla_cfg
}  // namespace cuda
}  // namespace td
