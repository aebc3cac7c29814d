// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/attention.h"
#include "ops/sla.h"
#include "ops/w8a8.h"
#ifdef TD_WITH_CUDA
#include "cuda/attention.h"
#endif

namespace td {
const char* attention_mode_name(AttentionMode m) {
  switch (m) {
    case AttentionMode::Dense: return "dense";
    case AttentionMode::SLA: return "sla";
    case AttentionMode::SageSLA: return "sagesla";
  }
  return "?";
}

AttentionMode parse_attention_mode(const std::string& s) {
  if (s == "dense") return AttentionMode::Dense;
  if (s == "sla") return AttentionMode::SLA;
  if (s == "sagesla") return AttentionMode::SageSLA;
  fail("--attention", cat("unknown mode '", s, "' (expected dense, sla or sagesla)"));
}

namespace ops {

// Self- and cross-attention share this entry; the sparse modes go to ops::sla_attention (ops/sla.h).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts) {
  if (opts.mode != AttentionMode::Dense) {
    sla_attention(q, k, v, o, opts);
    return;
  }
  if (o.is_cuda())
    TD_CUDA_OR_FAIL(cuda::attention(q, k, v, o, opts), "attention output");
  else
    cpu::attention(q, k, v, o, opts);
}

bool attention_int8_supported(const Tensor& q, const AttentionOptions& opts) {
  if (opts.mode != AttentionMode::Dense) return sla_int8_output_supported(q, opts);
#ifdef TD_WITH_CUDA
  return q.is_cuda() && q.dim() == 3 && q.size(2) == 128;
#else
  return false;
#endif
}

void attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Int8Act& out, const AttentionOptions& opts) {
  if (opts.mode != AttentionMode::Dense) {
    sla_attention_int8(q, k, v, out, opts);
    return;
  }
  TD_CHECK(attention_int8_supported(q, opts), "attention output",
           "an int8 attention output needs CUDA and head_dim 128, got q ", q.describe());
#ifdef TD_WITH_CUDA
  const int64_t L = q.size(0), H = q.size(1);
  ensure_int8_act(out, L, H * 128, Device::CUDA);
  cuda::attention_int8(q, k, v, out.q, out.scale, opts);
#else
  (void)k;
  (void)v;
#endif
}

}  // namespace ops
}  // namespace td
