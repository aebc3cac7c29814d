// Dispatch of sparse-linear attention (SLA / SageSLA) to the CPU reference or the CUDA kernels.
#include "ops/sla.h"

#include "core/error.h"
#include "cpu/sla_attention.h"
#ifdef TD_WITH_CUDA
#include "cuda/sla_attention.h"
#endif

namespace td {
namespace ops {

static void check_options(const AttentionOptions& opts) {
  TD_CHECK(opts.mode == AttentionMode::SLA || opts.mode == AttentionMode::SageSLA, "--attention",
           "sla_attention called with mode ", attention_mode_name(opts.mode));
  TD_CHECK(opts.block_q >= 0 && opts.block_k >= 0, "--block-q/--block-k", "block sizes must be >= 0 (0 = default)");
}

#ifdef TD_WITH_CUDA
static cuda::SlaParams cuda_params(const AttentionOptions& opts) {
  cuda::SlaParams p;
  p.quantized = opts.mode == AttentionMode::SageSLA;
  cuda::sla_default_blocks(p.quantized, &p.bq, &p.bk);
  if (opts.block_q) p.bq = opts.block_q;
  if (opts.block_k) p.bk = opts.block_k;
  p.topk = opts.topk;
  p.scale = opts.scale;
  p.proj_w = opts.proj_l_weight;
  p.proj_b = opts.proj_l_bias;
  return p;
}
#endif

bool sla_int8_output_supported(const Tensor& q, const AttentionOptions& opts) {
#ifdef TD_WITH_CUDA
  if (!q.is_cuda() || (opts.mode != AttentionMode::SLA && opts.mode != AttentionMode::SageSLA)) return false;
  return cuda::sla_int8_output_supported(q, cuda_params(opts));
#else
  (void)q;
  (void)opts;
  return false;
#endif
}

void sla_attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Int8Act& out,
                        const AttentionOptions& opts) {
  check_options(opts);
  TD_CHECK(sla_int8_output_supported(q, opts), "attention output",
           "an int8 attention output needs sagesla on an sm_90 GPU with head_dim 128");
#ifdef TD_WITH_CUDA
  const int64_t L = q.size(0), H = q.size(1);
  ensure_int8_act(out, L, H * 128, Device::CUDA);
  cuda::sla_attention_int8(q, k, v, out.q, out.scale, cuda_params(opts));
#else
  (void)k;
  (void)v;
  (void)out;
#endif
}

void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts) {
  check_options(opts);
  const bool quantized = opts.mode == AttentionMode::SageSLA;
  if (o.is_cuda()) {
#ifdef TD_WITH_CUDA
    cuda::sla_attention(q, k, v, o, cuda_params(opts));
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
