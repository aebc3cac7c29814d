#include "model/quantize.h"

#include <map>

#include "core/error.h"
#include "core/log.h"
#include "io/key_names.h"
#include "ops/w8a8.h"

namespace td {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Tensor as_bf16(const Tensor& t) {
  if (t.dtype() == DType::BF16) return t.to(Device::CPU).contiguous();  // borrowed from the mmapped input: no copy
  return t.to(Device::CPU).contiguous().to(DType::BF16);
}

}  // namespace

bool is_w8a8_linear_weight(const std::string& name, const Tensor& t) {
  // TurboDiffusion's replace_linear_norm: every nn.Linear under model.blocks except proj_l. Norm weights are 1-D and
  // the modulation is 3-D, so "2-D .weight under blocks." is exactly the Linears.
  return name.compare(0, 7, "blocks.") == 0 && ends_with(name, ".weight") && t.dim() == 2 &&
         name.find("proj_l") == std::string::npos;
}

std::vector<std::pair<std::string, Tensor>> quantize_dit_checkpoint(const TensorMap& raw, QuantizeStats* stats) {
  for (const auto& kv : raw.all()) {
    TD_CHECK(!ends_with(kv.first, ".int8_weight") && kv.second.dtype() != DType::I8, raw.source,
             "already quantized (tensor '", kv.first, "' is ", kv.second.describe(),
             "); quantize a bf16/f32 checkpoint");
  }
  const TensorMap in = normalize_dit_keys(raw);
  // Biases of quantized Linears are written next to their weight (keys iterate sorted, ".bias" before ".weight").
  std::map<std::string, bool> quantized_bias;
  for (const auto& kv : in.all())
    if (is_w8a8_linear_weight(kv.first, kv.second))
      quantized_bias[kv.first.substr(0, kv.first.size() - 7) + ".bias"] = true;

  QuantizeStats st;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& kv : in.all()) {
    const std::string& name = kv.first;
    const Tensor& t = kv.second;
    st.bytes_in += int64_t(t.nbytes());
    if (quantized_bias.count(name)) continue;
    if (is_w8a8_linear_weight(name, t)) {
      TD_CHECK(dtype_is_float(t.dtype()), raw.source, "tensor '", name, "' is ", t.describe(), ", expected float");
      const std::string base = name.substr(0, name.size() - 7);
      Tensor q, s;
      ops::quantize_weight_int8(Tensor(t).set_name(cat(raw.source, ": ", name)), q, s);
      out.emplace_back(base + ".int8_weight", q);
      out.emplace_back(base + ".scale", s);
      // Int8Linear always has a bias buffer; a bias-free Linear gets zeros so the file still loads in TurboDiffusion.
      if (const Tensor* b = in.find(base + ".bias")) {
        TD_CHECK(b->numel() == t.size(0) && dtype_is_float(b->dtype()), raw.source, "bias '", base, ".bias' is ",
                 b->describe(), " but the weight is ", t.describe());
        out.emplace_back(base + ".bias", as_bf16(*b).view({t.size(0)}));
      } else {
        out.emplace_back(base + ".bias", Tensor::zeros({t.size(0)}, DType::BF16));
      }
      st.linears++;
    } else if (name == "patch_embedding.weight") {
      out.emplace_back(name, as_bf16(patch_embedding_as_linear(t)));
    } else if (dtype_is_float(t.dtype())) {
      out.emplace_back(name, as_bf16(t));
    } else {
      out.emplace_back(name, t);
    }
  }
  TD_CHECK(st.linears > 0, raw.source, "no block Linears (blocks.N.*.weight) found: is this a Wan DiT checkpoint?");
  for (const auto& p : out) st.bytes_out += int64_t(p.second.nbytes());
  if (stats) *stats = st;
  return out;
}

}  // namespace td
