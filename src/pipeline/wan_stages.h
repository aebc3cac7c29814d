// The StageFactory of the real models: umT5 encoder + tokenizer, Wan DiT, Wan2.1 VAE, video writer, image loader.
#pragma once

#include <string>

#include "core/tensor.h"
#include "model/t5/t5_encoder.h"
#include "pipeline/stages.h"

namespace td {
namespace pipeline {

struct WanStageOptions {
  Device device = Device::CPU;
  T5Config t5_config;   // umT5-XXL unless --t5-config gives another (tests use tiny ones)
  bool t5_int8 = false;
  std::string dit_config;  // --config for the DiT: preset name or config.json ("" = infer from the checkpoint)
  // Random weights instead of files (bench pipeline): configs for the DiT; T5 uses t5_config; VAE default size.
  bool random_weights = false;
  std::string random_dit_preset;  // preset name or config.json
  uint64_t random_seed = 0;
};

StageFactory make_wan_stages(const GenerateOptions& o, const WanStageOptions& w);

}  // namespace pipeline
}  // namespace td
