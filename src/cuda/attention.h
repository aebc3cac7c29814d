// CUDA backend of dense ops::attention: a FlashAttention-2-style kernel on bf16 tensor cores (mma.sync).
// Tiles per head_dim: attention_config.h. SLA/SageSLA dispatch elsewhere (ops::sla_attention); this is always dense.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// o[Lq,H,Dh] = softmax(q k^T * scale) v per head. q [Lq,H,Dh], k/v [Lk,H,Dh], all bf16, Dh 64 or 128. The token
// dimension may be strided (views into a fused projection); Dh must be contiguous. Only opts.scale is read.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts = {});
// The same with the output handed over as the W8A8 activation of the next linear (ops::Int8Act layout, head_dim 128):
// out_q int8 [L, H * 128], out_scale f32 [L, H], quantized from fp32 as quantize_act_int8.
void attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out_q, Tensor& out_scale,
                    const AttentionOptions& opts = {});

// The compiled tile variants (attention_config.h), for benchmarks and tests: same contract as attention(), with a
// fixed tile shape. Names look like "d128_128x64_w4"; a variant only accepts its own head_dim.
// Benchmarks only: the lazy-rescale threshold of the online softmax (attention_config.h); -INFINITY rescales on
// every tile (the kernel's behaviour before lazy rescaling, for a same-run baseline). Not thread-safe.
void set_attention_rescale_slack_log2(float slack);

int attention_variant_count();
const char* attention_variant_name(int i);
int attention_variant_head_dim(int i);
void attention_variant(int i, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o,
                       const AttentionOptions& opts = {});

}  // namespace cuda
}  // namespace td
