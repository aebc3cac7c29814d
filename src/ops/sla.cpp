// Placeholder until the SageSLA work lands: the modes are parsed but not yet runnable.
#include "ops/sla.h"

#include "core/error.h"

namespace td {
namespace ops {

void sla_attention(const Tensor&, const Tensor&, const Tensor&, Tensor&, const AttentionOptions& opts) {
  fail("--attention", cat(attention_mode_name(opts.mode), " is not implemented yet; use --attention dense"));
}

}  // namespace ops
}  // namespace td
