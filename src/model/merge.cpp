#include "model/merge.h"

#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/key_names.h"

namespace td {

namespace {

void refuse_quantized(const TensorMap& m, const char* role) {
  for (const auto& kv : m.all())
    TD_CHECK(kv.second.dtype() != DType::I8, m.source, role, " is a quantized checkpoint (tensor '", kv.first,
             "' is ", kv.second.describe(), "); merge the bf16/f32 checkpoints, then quantize");
}

std::string list(const std::vector<std::string>& keys) {
  std::string s;
  const size_t limit = 20;
  for (size_t i = 0; i < keys.size() && i < limit; i++) s += (i ? ", " : "") + keys[i];
  if (keys.size() > limit) s += cat(" ... (", keys.size(), " in all)");
  return s;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> merge_checkpoints(const TensorMap& base_raw, const TensorMap& d0_raw,
                                                              const TensorMap& d1_raw, float w, MergeStats* stats) {
  refuse_quantized(base_raw, "--base");
  refuse_quantized(d0_raw, "--diff-base");
  refuse_quantized(d1_raw, "--diff-target");
  const TensorMap B = normalize_dit_keys(base_raw), D0 = normalize_dit_keys(d0_raw), D1 = normalize_dit_keys(d1_raw);

  std::vector<std::string> miss0, miss1;
  for (const auto& kv : B.all()) {
    if (!D0.has(kv.first)) miss0.push_back(kv.first);
    if (!D1.has(kv.first)) miss1.push_back(kv.first);
  }
  TD_CHECK(miss0.empty(), D0.source, "--diff-base lacks ", miss0.size(), " key(s) of --base ", B.source, ": ",
           list(miss0));
  TD_CHECK(miss1.empty(), D1.source, "--diff-target lacks ", miss1.size(), " key(s) of --base ", B.source, ": ",
           list(miss1));

  MergeStats st;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& kv : B.all()) {
    const std::string& k = kv.first;
    const Tensor &b = kv.second, &t0 = D0.get(k), &t1 = D1.get(k);
    TD_CHECK(t0.shape() == b.shape(), D0.source, "tensor '", k, "' is ", shape_str(t0.shape()), " but --base has ",
             shape_str(b.shape()));
    TD_CHECK(t1.shape() == b.shape(), D1.source, "tensor '", k, "' is ", shape_str(t1.shape()), " but --base has ",
             shape_str(b.shape()));
    if (!dtype_is_float(b.dtype())) {  // integer buffers (none in Wan, but keep them intact)
      out.emplace_back(k, b);
      continue;
    }
    TD_CHECK(dtype_is_float(t0.dtype()) && dtype_is_float(t1.dtype()), D1.source, "tensor '", k,
             "' is not a float tensor in all three checkpoints");
    const Tensor fb = b.to_f32_host().contiguous(), f0 = t0.to_f32_host().contiguous(), f1 = t1.to_f32_host().contiguous();
    const int64_t n = fb.numel();
    // Two rounded fp32 steps, as PyTorch evaluates base + w * (target - diff_base): delta first, then the sum.
    // (Kept in separate loops so the compiler cannot contract them into an FMA.)
    std::vector<float> delta(static_cast<size_t>(n));
    const float *pb = fb.ptr<float>(), *p0 = f0.ptr<float>(), *p1 = f1.ptr<float>();
    for (int64_t i = 0; i < n; i++) delta[size_t(i)] = p1[i] - p0[i];
    for (int64_t i = 0; i < n; i++) delta[size_t(i)] = w * delta[size_t(i)];
    Tensor r = Tensor::empty(b.shape(), DType::F32);
    float* pr = r.ptr<float>();
    for (int64_t i = 0; i < n; i++) pr[i] = pb[i] + delta[size_t(i)];
    out.emplace_back(k, b.dtype() == DType::F32 ? r : r.to(b.dtype()));
    st.merged++;
  }
  for (const auto& kv : D1.all()) {
    if (B.has(kv.first)) continue;
    if (D0.has(kv.first))
      log_warn("merge: '", kv.first, "' is in --diff-base and --diff-target but not in --base; copying the target's");
    out.emplace_back(kv.first, kv.second);
    st.copied++;
  }
  for (const auto& kv : D0.all())
    if (!B.has(kv.first) && !D1.has(kv.first)) {
      log_warn("merge: '", kv.first, "' is only in --diff-base; dropped");
      st.ignored++;
    }
  if (stats) *stats = st;
  return out;
}

}  // namespace td
