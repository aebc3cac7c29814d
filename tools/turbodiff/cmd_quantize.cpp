// `turbodiff quantize IN OUT`: a bf16/f32 Wan DiT checkpoint -> TurboDiffusion's W8A8 `-quant` layout, written as
// safetensors (atomically). See model/quantize.h for exactly which tensors change.
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/quantize.h"

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

td::cli::Runner setup(CLI::App& app) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  app.add_option("input", *in, "bf16/f32 DiT checkpoint: .safetensors, .safetensors.index.json or .pth")->required();
  app.add_option("output", *out, "output .safetensors")->required();
  return [in, out]() {
    TD_CHECK(ends_with(*out, ".safetensors"), *out,
             "output must be a .safetensors file (.pth output is not supported; TurboDiffusion's loader reads "
             "safetensors too)");
    TD_CHECK(*in != *out, *out, "output would overwrite the input");
    td::TensorMap m = td::load_checkpoint(*in);
    td::QuantizeStats st;
    auto tensors = td::quantize_dit_checkpoint(m, &st);
    std::map<std::string, std::string> meta{{"format", "pt"},
                                            {"turbodiff.quantization", "w8a8-int8-128x128"},
                                            {"turbodiff.source", *in}};
    td::save_safetensors(*out, tensors, meta);
    std::printf("quantized %d Linears: %.2f GB -> %.2f GB, wrote %s (%zu tensors)\n", st.linears,
                double(st.bytes_in) / 1e9, double(st.bytes_out) / 1e9, out->c_str(), tensors.size());
    return 0;
  };
}

td::cli::Command reg("quantize", "Quantize a Wan DiT checkpoint to TurboDiffusion's W8A8 (-quant) format", setup);

}  // namespace
