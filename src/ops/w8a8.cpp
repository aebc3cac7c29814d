// Placeholder until the W8A8 work lands.
#include "ops/w8a8.h"

#include "core/error.h"

namespace td {
namespace ops {

void linear_w8a8(const Tensor&, const Tensor&, const Tensor&, const Tensor*, Tensor&, Epilogue) {
  fail("--linear w8a8", "W8A8 linears are not implemented yet; use --linear bf16");
}

void quantize_weight_int8(const Tensor&, Tensor&, Tensor&) {
  fail("--linear w8a8", "weight quantization is not implemented yet");
}

}  // namespace ops
}  // namespace td
