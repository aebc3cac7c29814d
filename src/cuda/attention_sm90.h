// Dense attention on Hopper (sm_90a): wgmma, TMA and a persistent warp-specialized grid. Internal to
// src/cuda/attention.cu, which picks it for head_dim 128 on sm_90 and keeps the mma.sync kernel for the rest.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace td {
namespace cuda {

struct DenseAttnArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* o;  // or, when oq is set, the W8A8 activation: int8 [lq, heads, 128] and f32 scales [lq, heads]
  int8_t* oq;
  float* oscale;
  int64_t q_tok, k_tok, v_tok, o_tok;      // token strides, elements
  int64_t q_head, k_head, v_head, o_head;  // head strides, elements
  int lq, lk, heads;
  float scale_log2;  // softmax scale * log2(e)
};

// Whether the Hopper kernel runs these (head_dim 128, an sm_90 GPU, TD_ATTENTION_SM90 not 0).
bool attention_sm90_applies(int head_dim);
void attention_sm90(const DenseAttnArgs& a);

}  // namespace cuda
}  // namespace td
