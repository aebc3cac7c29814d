// Text-to-video: text encoder phase -> DiT phase -> VAE phase -> video files. Each phase's model is created by the
// StageFactory when the phase starts and destroyed when it ends, so only one model is resident at a time.
#pragma once

#include "pipeline/generate.h"

namespace td {
namespace pipeline {

// The frame size the options ask for (--size, else the --resolution/--aspect table).
Size requested_size(const GenerateOptions& o);

// Runs a validated t2v job (validate_options is called again here; files are the caller's business, see
// check_files). Progress goes to stderr; nothing is printed on stdout.
GenerateReport run_t2v(const GenerateOptions& o, StageFactory& f);

// Helpers shared with i2v.
Tensor encode_prompts(const GenerateOptions& o, StageFactory& f, GenerateReport& r, Tensor* neg_context);
void decode_and_write(const GenerateOptions& o, StageFactory& f, GenerateReport& r, const std::vector<Tensor>& latents,
                      Progress& progress);

}  // namespace pipeline
}  // namespace td
