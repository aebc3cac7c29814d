// Wan DiT hyper-parameters: presets, Wan's config.json (and diffusers' config.json), and inference from tensor shapes.
// Facts in ../shared/reference/wan_spec.md §1.1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace td {

class TensorMap;

struct DitConfig {
  std::string name = "custom";   // preset name, or the file/checkpoint the config came from
  std::string model_type = "t2v";  // t2v | i2v | ti2v (i2v here = Wan2.2 style: y channels only, no CLIP branch)
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  int64_t in_dim = 16;   // channels entering the patch embedding (i2v: 16 noise + 20 of y)
  int64_t out_dim = 16;
  int64_t text_len = 512;
  int64_t text_dim = 4096;
  int64_t freq_dim = 256;
  float eps = 1e-6f;
  int64_t patch[3] = {1, 2, 2};  // only (1,2,2) is supported

  int64_t head_dim() const { return dim / num_heads; }
  // Channels of y the model expects on top of the noise latent (in_dim - out_dim for i2v, 0 for t2v).
  int64_t y_dim() const { return model_type == "t2v" ? 0 : in_dim - out_dim; }
  int64_t noise_dim() const { return in_dim - y_dim(); }
  // Raises td::Error naming `subject` if the numbers do not describe a runnable Wan DiT.
  void validate(const std::string& subject) const;
  std::string summary() const;  // one line for logs

  // Presets: wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.2-t2v-a14b, wan2.2-i2v-a14b. td::Error naming --config otherwise.
  static DitConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
  // Wan config.json ({"dim", "ffn_dim", "num_heads", ...}) or diffusers' ({"num_attention_heads", ...}).
  static DitConfig from_json_text(const std::string& text, const std::string& source);
  static DitConfig from_json_file(const std::string& path);
  // From the shapes of a checkpoint whose keys are already normalised (normalize_dit_keys), with head_dim 128.
  // A matching preset's name is adopted.
  static DitConfig infer(const TensorMap& normalized);
  // `--config` is a preset name or a file. Empty: config.json next to the weights, else the safetensors
  // metadata "config", else inferred from `normalized` (which may be null if not yet loaded: then only the first two).
  static DitConfig resolve(const std::string& config_arg, const std::string& weights_path,
                           const TensorMap* normalized);
};

}  // namespace td
