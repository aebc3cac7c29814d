// Dispatch of sparse-linear attention (SLA / SageSLA) to the CPU reference or the CUDA kernels.
#include "ops/sla.h"

#include "core/error.h"
#include "cpu/sla_attention.h"
#ifdef TD_WITH_CUDA
#include "cuda/sla_attention.h"
#endif

namespace td {
namespace ops {

void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts) {
  TD_CHECK(opts.mode == AttentionMode::SLA || opts.mode == AttentionMode::SageSLA, "--attention",
           "sla_attention called with mode ", attention_mode_name(opts.mode));
  TD_CHECK(opts.block_q >= 0 && opts.block_k >= 0, "--block-q/--block-k", "block sizes must be >= 0 (0 = default)");
  const bool quantized = opts.mode == AttentionMode::SageSLA;
  if (o.is_cuda()) {
#ifdef TD_WITH_CUDA
    cuda::SlaParams p;
    p.quantized = quantized;
    cuda::sla_default_blocks(quantized, &p.bq, &p.bk);
    if (opts.block_q) p.bq = opts.block_q;
    if (opts.block_k) p.bk = opts.block_k;
    p.topk = opts.topk;
    p.scale = opts.scale;
    p.proj_w = opts.proj_l_weight;
    p.proj_b = opts.proj_l_bias;
    cuda::sla_attention(q, k, v, o, p);
#else
    fail("--device", "this build has no CUDA backend");
#endif
    return;
  }
  // The CPU uses TurboDiffusion's non-Hopper geometry for both modes: 128 query x 64 key tokens.
  cpu::sla_attention(q, k, v, o, opts.block_q ? opts.block_q : 128, opts.block_k ? opts.block_k : 64, opts.topk,
                     opts.scale, opts.proj_l_weight, opts.proj_l_bias, quantized);
}

}  // namespace ops
}  // namespace td
