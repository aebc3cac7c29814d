// Dispatcher: the output's device picks td::cpu or td::cuda (see DEVNOTES.md).
#include "ops/ops.h"

#include "core/error.h"
#include "ops/dispatch.h"
#include "cpu/attention.h"
#include "ops/sla.h"
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

}  // namespace ops
}  // namespace td
