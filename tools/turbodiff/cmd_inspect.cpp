// `turbodiff inspect FILE`: lists the tensors of any checkpoint this engine can read (name, dtype, shape).
#include <cstdio>

#include "command.h"
#include "io/key_names.h"
#include "io/tensor_map.h"

namespace {

td::cli::Runner setup(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(0);
  app.add_option("file", *path, "checkpoint: .safetensors, .safetensors.index.json or .pth")->required();
  auto dit_names = std::make_shared<bool>(false);
  app.add_option("--limit", *limit, "print at most this many tensors (0 = all)");
  app.add_flag("--dit-names", *dit_names,
               "show Wan DiT names as the engine sees them (wrapper prefixes stripped, diffusers/ComfyUI mapped)");
  return [path, limit, dit_names]() {
    td::TensorMap m = td::load_checkpoint(*path);
    if (*dit_names) m = td::normalize_dit_keys(m);
    int n = 0;
    int64_t total = 0;
    for (auto& kv : m.all()) {
      total += kv.second.numel();
      if (*limit && n >= *limit) continue;
      std::printf("%-70s %-7s %s\n", kv.first.c_str(), td::dtype_name(kv.second.dtype()),
                  td::shape_str(kv.second.shape()).c_str());
      n++;
    }
    std::printf("%zu tensors, %lld elements\n", m.size(), static_cast<long long>(total));
    return 0;
  };
}

td::cli::Command reg("inspect", "List the tensors in a checkpoint file", setup);

}  // namespace
