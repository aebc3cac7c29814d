// Tile and architecture choices for the W8A8 GEMM kernels (src/cuda/w8a8_gemm.cu). One K tile is one 128-wide
// quantization block, so the int32 -> fp32 dequantization happens exactly once per main-loop iteration.
#pragma once

namespace td {
namespace cuda {
namespace w8a8cfg {

// mma.sync path (sm_80 / 89 / 90 / 120): m16n8k32 s8, ldmatrix from a 128-byte-row XOR-swizzled smem tile.
constexpr int kBM = 128, kBN = 128, kBK = 128;  // kBN = weight scale block: one weight scale per CTA per K tile
constexpr int kWarpsM = 2, kWarpsN = 4;         // 8 warps; warp tile 64 x 32 (4 x 4 mma tiles)
constexpr int kThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWM = kBM / kWarpsM, kWN = kBN / kWarpsN;
// 32 KiB per stage. 3 stages = 96 KiB: fits sm_89/sm_120 (99 KiB opt-in) as well as sm_80/sm_90.
constexpr int kStages = 3;
constexpr int kStageBytes = (kBM + kBN) * kBK;
constexpr int kSmemBytes = kStages * kStageBytes;
// Tiles along M walked together before moving to the next N tile (keeps the A panel and the B panel in L2).
constexpr int kGroupM = 8;

// sm_90a kernels: the same 128x128x128 tile and smem layout (the 128-byte XOR swizzle above is exactly wgmma's
// SWIZZLE_128B K-major layout).
// "ws" (warp-specialized, persistent): one producer warp issues TMA bulk-tensor loads (SWIZZLE_128B, the same
// layout) into a kWsStages ring guarded by full/empty mbarriers; two consumer warpgroups (64 x 128 each) run wgmma
// and fold without any CTA-wide barrier, so one folds while the other's MMAs run and the producer refills the ring
// during the epilogue. 6 stages = 192 KiB (+1 KiB alignment slack), one CTA per SM, grid = min(tiles, SMs).
constexpr int kWsStages = 6;
constexpr int kWsThreads = 384;
constexpr int kWsSmemBytes = kWsStages * kStageBytes + 1024;
// "wsmc": the same kernel on clusters of kWsClusterM CTAs stacked along M that share the W tile through TMA
// multicast (each CTA loads 128/kWsClusterM of its rows). It ran at half the speed of "ws" until the consumers'
// remote arrivals dropped `.release.cluster` (a cluster-wide memory barrier per arrival; ncu: ~30% of the samples
// in MEMBAR stalls); now 0.67x-0.90x of cuBLASLt bf16. Never chosen by "auto": multicast gains little here
// (ws256mc vs ws256: -2% to +5% on the 14B shapes, 15% slower at 32760x1536x8960, same call in perf.md).
constexpr int kWsClusterM = 2;
// "ws256": the ws kernel with 128 x 256 CTA tiles. 128x128 int8 tiles need 32 KiB of L2 reads per 2M MACs (64 B per
// clock per SM at the int8 rate, above what the L2 delivers: "ws" moves ~4.4 TB/s at 520-650 TOPS); 128x256 needs
// 48 KiB per 4M MACs. Each consumer warpgroup owns 64 x 256 outputs as two 128-column halves that share one int32
// accumulator set (issue half 0, fold it while the other warpgroup's MMAs run, issue half 1, fold), so it holds 64
// int32 + 128 fp32 accumulators; setmaxnreg moves registers from the producer warpgroup to the consumers.
constexpr int kWideBN = 256;
constexpr int kWideStages = 4;
constexpr int kWideStageBytes = (kBM + kWideBN) * kBK;  // 48 KiB
// Epilogue staging (bf16 and int8 outputs): each consumer warpgroup writes one 64 x 128 half of its tile into its own
// 16 KiB buffer (128-byte-swizzle boxes of 64 rows x 128 bytes), then hands it to the TMA unit (one thread,
// asynchronous; ws3, ws2, and ws256 from kWideTmaMinK on) or stores it as full 16-byte row segments from every thread
// (ws, and ws256 below kWideTmaMinK). The direct 4-byte (bf16) / 2-byte (int8) scattered stores filled the LSU queue
// (ncu: "LG throttle" was the top stall of the q/k/v GEMM). H100 (perf.md, session 14): TMA stores made the 1.3B
// q/k/v and cross-q GEMMs (ws3) 4-5% faster, 1.0 ms per forward. In ws256 the two halves of a warpgroup shared one
// buffer, so the second waited for the unit to read the first and its 14B GEMMs got up to 7% slower; with two buffers
// per warpgroup (room made by dropping one of the four ring stages) the 14B 720p forward went from 2,993.5-2,998.7
// to 2,974.4-2,985.4 ms (three pairs), while the 1.3B forward, whose ws256 GEMM (ffn.0) has K = 1536, lost 0-1.3 ms:
// hence kWideTmaMinK.
constexpr int kWideEpilogueBytes = 64 * kBN * 2;
constexpr int kWideSmemBytes = kWideStages * kWideStageBytes + 2 * kWideEpilogueBytes + 1024;
constexpr int kWideTmaMinK = 4096, kWideTmaStages = 3;
constexpr int kWideTmaSmemBytes = kWideTmaStages * kWideStageBytes + 4 * kWideEpilogueBytes + 1024;
constexpr int kWideProducerRegs = 40, kWideConsumerRegs = 232;  // 128 * 40 + 256 * 232 <= 64 Ki registers
// "ws3": three consumer warpgroups of 64 x 128 (CTA tile 192 x 128) taking turns on the tensor cores. In ws256 each
// warpgroup waits for its own MMAs before it can fold them, and with two warpgroups the fold + wait did not fit in
// the other one's MMA time (ncu: tensor pipe 33% busy, top stall the wgmma wait). With three, a warpgroup has two
// other warpgroups' MMA time (2 x 256 cycles per K block) to wait and fold. 64 int32 + 64 fp32 accumulators per
// thread fit the 160 registers setmaxnreg can give three consumer warpgroups.
constexpr int kW3BM = 192;
constexpr int kW3Stages = 4;
constexpr int kW3StageBytes = (kW3BM + kBN) * kBK;  // 40 KiB
constexpr int kW3Threads = 512;
constexpr int kW3SmemBytes = kW3Stages * kW3StageBytes + 3 * kWideEpilogueBytes + 1024;
constexpr int kW3ProducerRegs = 24, kW3ConsumerRegs = 160;  // 128 * 24 + 384 * 160 <= 64 Ki registers
// "ws2": the ws tile (128 x 128, two consumer warpgroups of 64 x 128) with two int32 accumulator sets per warpgroup:
// block kb's MMAs are issued before block kb - 1 is folded, so each warpgroup keeps the tensor cores busy while it
// folds instead of waiting for its own MMAs first (ws256 / ws3). 64 + 64 int32 + 64 fp32 accumulators per thread.
// Why: with the fold removed (a throwaway build, wrong results) ws256 ran 1.7-2.5x faster, so the fold, not the
// loads, bounds these kernels. ws2 does overlap it, but its 128 x 128 tile moves 33% more bytes per MAC than
// ws256's: without the fold it stops at ~1040 TOPS, with it ~880, about ws256's rate (perf.md, session 11).
constexpr int kWs2Stages = 5;
constexpr int kWs2SmemBytes = kWs2Stages * kStageBytes + 2 * kWideEpilogueBytes + 1024;
// "by-shape": ws3 up to kW3MaxK, ws2 above it, both below kW3MaxN columns; ws256 from kW3MaxN columns on. H100,
// GEMM alone (perf.md, same call): K = 1536 ws3 0.209 / 1.111 ms vs ws256 0.211 / 1.149 ms; K = 5120-13824 ws3 5-13%
// slower (its 192 x 128 tile moves more bytes per MAC); DiT 1.3B forward 241.6 ms with ws3 everywhere vs 248.1 with
// ws256. Also for the int8-output epilogue (ffn.0 feeding ffn.2): ws256mc looked 4% faster there alone (1.334 vs
// 1.388 ms) but the forward with it took 239.4 ms against 235.0-235.6 with ws3 (ffn.0 54.5 vs 50.0 ms; session 4).
// ws2 above kW3MaxK (only the 1.3B ffn.2, 32760 x 8960 -> 1536, among Wan's shapes): DiT 1.3B forward 173.8 / 174.1 /
// 174.0 ms with ws256 there, 171.9 / 172.0 / 172.5 with ws2, alternated in one call. ws2 on the 14B shapes with
// N = 5120 too made the 14B forward slower (3004.8 / 3012.0 -> 3014.5 / 3021.2 ms), so they stay on ws256.
constexpr int kW3MaxK = 2048;
// From kW3MaxN columns on, ws256: the wide ffn.0 GEMM (K = 1536, N = 8960) and the 14B shapes; its 128 x 256 tile
// moves fewer bytes per MAC (H100, no bias: GEMM alone 1.115 vs 1.133 ms, GELU->int8 1.327 vs 1.405 ms; perf.md
// session 7). (Until session 8, ws256mc for the 14B shapes, where it was 2-5% faster. Once the fold lost its FADD
// (kFoldUnbiasEvery), ws256 became the faster one there: 4.51 / 13.31 / 12.21 ms vs ws256mc 4.71 / 13.66 / 12.71 ms,
// GEMM alone with bias, one call, perf.md session 8.)
constexpr int kW3MaxN = 4096;
// The sm_90a kernels' per-K-block fold (w8a8_gemm_sm90.cu, fold_step): 0 = exact int32 -> fp32 (magic add, FADD,
// FFMA: 3 instructions per accumulator); R > 0 = the magic is removed once every R K blocks (2 instructions per
// accumulator, ~1e-4 relative rounding error).
constexpr int kFoldUnbiasEvery = 4;
// What TD_W8A8_KERNEL=auto runs on sm_90 (change after `turbodiff bench gemm --kernel all`).
constexpr const char* kAutoSm90Kernel = "by-shape";

// The activation-quant / fused-norm kernels: one CTA per row, 4 channels per thread per chunk.
constexpr int kRowThreads = 128;
constexpr int kRowMaxChunks = 16;  // 128 threads x 16 chunks x 4 = rows up to 8192 channels

}  // namespace w8a8cfg
}  // namespace cuda
}  // namespace td
