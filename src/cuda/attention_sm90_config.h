// Tile and arch choices of the dense Hopper attention kernel (src/cuda/attention_sm90.cu): bf16, head_dim 128,
// sm_90a only.
//
// Why these numbers:
//  - One CTA per SM, persistent over (query tile, head) items, with two consumer warpgroups and one producer
//    warpgroup.
//    A CTA's query tile is 128 rows (64 per consumer warpgroup) so that each K / V tile read from L2 serves 128
//    query rows: cross-attention (512 keys) re-reads all of K and V per query tile, and at 64 rows per tile that
//    traffic alone (~1.6 GB per 1.3B layer) would take as long as the mma.sync kernel's whole 0.30 ms.
//  - Key tiles of 128: S (64 fp32), O (64 fp32) and P (32 bf16x2) registers per consumer thread fit the 232 that
//    setmaxnreg gives them; Q is a shared-memory wgmma operand, not registers.
//  - Two K / V stages (64 KiB each) and two Q buffers (32 KiB each): 192 KiB. The producer loads the next item's Q
//    and first K / V while the consumers finish the current one, which is what the persistence is for (one CTA per
//    SM has no other CTA to hide a fresh start's latency).
#pragma once

namespace td {
namespace cuda {
namespace attn90 {

constexpr int kHeadDim = 128;
constexpr int kConsumers = 2;                // consumer warpgroups
constexpr int kBlockM = 64 * kConsumers;     // query rows per item
constexpr int kBlockN = 128;                 // keys per K / V stage
constexpr int kStages = 2;                   // K / V stages
constexpr int kQBuffers = 2;                 // Q tiles in flight
constexpr int kThreads = (kConsumers + 1) * 128;  // + the producer warpgroup (one thread of it issues the loads)
// setmaxnreg: the producer warpgroup hands its registers to the consumers (128 x 40 + 256 x 232 <= 64 Ki).
constexpr int kProducerRegs = 40, kConsumerRegs = 232;
constexpr int kHalfBytes = 128 * 128;        // one 64-wide half of a 128-row bf16 tile (128-byte rows)
constexpr int kQBytes = kBlockM / 128 * 2 * kHalfBytes;  // the Q tile: two halves of kBlockM rows
constexpr int kKBytes = 2 * kHalfBytes;      // K tile [128 keys][128 d] as two 64-wide halves
constexpr int kVBytes = 2 * kHalfBytes;      // V^T tile [128 d][128 keys] as two 64-key halves
constexpr int kSmemBytes = kQBuffers * kQBytes + kStages * (kKBytes + kVBytes) + 1024;  // + alignment slack

}  // namespace attn90
}  // namespace cuda
}  // namespace td
